// Optimizer steps, in place on the parameter P_ and its state buffers S1, S2 (one
// invocation per element). Scalar hyper-parameters come from the uniform (recomputed by
// the host every step, e.g. Adam's bias corrections); which terms exist is fixed by
// `override` flags, so each configuration compiles to straight-line code. The arithmetic
// follows the CPU backend's order of operations.

struct Params {
  n: u32, _p0: u32, _p1: u32, _p2: u32,
  s: array<vec4<f32>, 3>,  // hyper-parameters, see each entry point
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> P_: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> S1: array<f32>;
@group(0) @binding(4) var<storage, read_write> S2: array<f32>;

override WG: u32 = 256u;
override DECAY: bool = false;
override MOMENTUM: bool = false;
override NESTEROV: bool = false;
override FIRST: bool = false;
override DECOUPLED: bool = false;

//! include common.wgsl

// s: lr, momentum, 1 - dampening, weight_decay
@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  let lr = P.s[0].x;
  let mom = P.s[0].y;
  var g = G[i];
  if (DECAY) { g = g + P.s[0].w * P_[i]; }
  if (MOMENTUM) {
    var b = g;
    if (!FIRST) { b = S1[i] * mom + P.s[0].z * g; }
    S1[i] = b;
    if (NESTEROV) { g = g + mom * b; } else { g = b; }
  }
  P_[i] = P_[i] - lr * g;
}

// s: lr, eps, weight_decay
@compute @workgroup_size(WG)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var g = G[i];
  if (DECAY) { g = g + P.s[0].z * P_[i]; }
  let acc = S1[i] + g * g;
  S1[i] = acc;
  P_[i] = P_[i] - P.s[0].x * g / (sqrt(acc) + P.s[0].y);
}

// s: lr, alpha, 1 - alpha, eps, momentum, weight_decay
@compute @workgroup_size(WG)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var g = G[i];
  if (DECAY) { g = g + P.s[1].y * P_[i]; }
  let sq = S1[i] * P.s[0].y + P.s[0].z * g * g;
  S1[i] = sq;
  var step = g / (sqrt(sq) + P.s[0].w);
  if (MOMENTUM) {
    step = S2[i] * P.s[1].x + step;
    S2[i] = step;
  }
  P_[i] = P_[i] - P.s[0].x * step;
}

// s: lr, beta1, 1 - beta1, beta2, 1 - beta2, eps, weight_decay, lr / bias_correction1,
//    sqrt(bias_correction2), 1 - lr * weight_decay
@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var p = P_[i];
  var g = G[i];
  if (DECAY) {
    if (DECOUPLED) { p = p * P.s[2].y; } else { g = g + P.s[1].z * p; }
  }
  let m = S1[i] * P.s[0].y + P.s[0].z * g;
  let v = S2[i] * P.s[0].w + P.s[1].x * g * g;
  S1[i] = m;
  S2[i] = v;
  let denom = sqrt(v) / P.s[2].x + P.s[1].y;
  P_[i] = p - P.s[1].w * m / denom;
}
