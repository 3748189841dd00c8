// Batch normalisation in training mode and its gradient. x is viewed as contiguous
// (A, K, B) with K the normalised channels (statistics over A and B); one workgroup per
// channel reduces its A * B values with parallel tree reductions, then writes its outputs.
// The variance is the mean of squared deviations from the already computed mean (two
// passes, as the CPU backend), which avoids the cancellation of E[x^2] - E[x]^2.

struct Params {
  A: u32, K: u32, B: u32, _p0: u32,
  eps: f32, _p1: f32, _p2: f32, _p3: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
// bn_train: y, mean, invstd, x, gamma, beta
// bn_grad:  gx, ggamma, gbeta, gy, x, gamma, mean, invstd
@group(0) @binding(1) var<storage, read_write> O1: array<f32>;
@group(0) @binding(2) var<storage, read_write> O2: array<f32>;
@group(0) @binding(3) var<storage, read_write> O3: array<f32>;
@group(0) @binding(4) var<storage, read> I4: array<f32>;
@group(0) @binding(5) var<storage, read> I5: array<f32>;
@group(0) @binding(6) var<storage, read> I6: array<f32>;
@group(0) @binding(7) var<storage, read> I7: array<f32>;
@group(0) @binding(8) var<storage, read> I8: array<f32>;

override WG: u32 = 256u;

var<workgroup> t1: array<f32, WG>;
var<workgroup> t2: array<f32, WG>;

fn at(e: u32, k: u32) -> u32 {
  return ((e / P.B) * P.K + k) * P.B + e % P.B;
}

// Tree-sum t1 (and t2 when `both`); results in t1[0], t2[0].
fn tree_sum(li: u32, both: bool) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      t1[li] += t1[li + s];
      if (both) { t2[li] += t2[li + s]; }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn bn_train(@builtin(local_invocation_index) li: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = wid.x + wid.y * nwg.x;
  if (k >= P.K) { return; }  // uniform per workgroup, so barriers stay valid
  let n = P.A * P.B;
  var s = 0.0;
  for (var e = li; e < n; e += WG) { s += I4[at(e, k)]; }
  t1[li] = s;
  tree_sum(li, false);
  let mean = t1[0] / f32(n);
  workgroupBarrier();
  var q = 0.0;
  for (var e = li; e < n; e += WG) {
    let d = I4[at(e, k)] - mean;
    q += d * d;
  }
  t1[li] = q;
  tree_sum(li, false);
  let invstd = 1.0 / sqrt(t1[0] / f32(n) + P.eps);
  let scale = invstd * I5[k];
  let shift = I6[k];
  for (var e = li; e < n; e += WG) {
    let i = at(e, k);
    O1[i] = (I4[i] - mean) * scale + shift;
  }
  if (li == 0u) {
    O2[k] = mean;
    O3[k] = invstd;
  }
}

@compute @workgroup_size(WG)
fn bn_grad(@builtin(local_invocation_index) li: u32,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let k = wid.x + wid.y * nwg.x;
  if (k >= P.K) { return; }
  let n = P.A * P.B;
  let mean = I7[k];
  let invstd = I8[k];
  var sg = 0.0;
  var sgx = 0.0;
  for (var e = li; e < n; e += WG) {
    let i = at(e, k);
    let g = I4[i];
    sg += g;
    sgx += g * (I5[i] - mean) * invstd;
  }
  t1[li] = sg;
  t2[li] = sgx;
  tree_sum(li, true);
  let gbeta = t1[0];
  let ggamma = t2[0];
  let m = f32(n);
  let c = I6[k] * invstd / m;
  for (var e = li; e < n; e += WG) {
    let i = at(e, k);
    let xhat = (I5[i] - mean) * invstd;
    O1[i] = c * (m * I4[i] - gbeta - xhat * ggamma);
  }
  if (li == 0u) {
    O2[k] = ggamma;
    O3[k] = gbeta;
  }
}
