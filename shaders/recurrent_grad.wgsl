// Backpropagation through time for the fused recurrent steps of recurrent.wgsl: one
// dispatch per step, in reverse scan order, then one FINAL dispatch for the initial state.
// An invocation owns one (b, j). A step's dh is dL/dh_t (G) plus the recurrent part
// DG[next step] @ W_hh, computed here from the previous dispatch's DG, so nothing else
// runs per step; the weight gradients are GEMMs over all steps afterwards (on the host
// side of engine/nn/sequence_kernels.py, which holds the same math for NumPy).
//
//   DGX   (T, B, G*H)  gradient of the pre-activations (= of GX = X W_ih^T + b_ih)
//   DGH   (T, B, 3H)   GRU only: gradient of the recurrent projection W_hh h + b_hh
//                      (differs from DGX in the n gate, which sees r * (W_hn h + b_hn))
//   STATE (2, B, H)    [0] passed from step to step (LSTM dc, GRU dh * z); [1] written by
//                      the FINAL dispatch: the initial hidden state's gradient
// (8 storage buffers: WebGPU's default per-stage limit)

struct Params {
  T: u32, B: u32, H: u32, t: u32,      // t: this step's time index
  p: u32, init: u32,                   // p: time index of the state it started from
  start: u32, final_: u32,             // start: the first backward step (no step after)
  nxt: u32, _p0: u32, _p1: u32, _p2: u32,  // nxt: the step after t (its DG is ready)
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> DGX: array<f32>;
@group(0) @binding(2) var<storage, read_write> DGH: array<f32>;
@group(0) @binding(3) var<storage, read_write> STATE: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;      // dL/d(packed output)
@group(0) @binding(5) var<storage, read> OUTF: array<f32>;   // the forward's output
@group(0) @binding(6) var<storage, read> SAVEF: array<f32>;  // the forward's SAVE
@group(0) @binding(7) var<storage, read> W: array<f32>;      // W_hh, (G*H, H)
@group(0) @binding(8) var<storage, read> S0: array<f32>;     // LSTM c0, GRU h0

override WG: u32 = 64u;
override RELU: bool = false;

//! include activation.wgsl
//! include common.wgsl

// sum_m D[nxt, b, m] * W[m, j] over the G*H gate units m
fn recurrent_dh(b: u32, j: u32, gh: u32, from_dgh: bool) -> f32 {
  let row = (P.nxt * P.B + b) * gh;
  var acc = 0.0;
  for (var m = 0u; m < gh; m++) {
    var d: f32;
    if (from_dgh) { d = DGH[row + m]; } else { d = DGX[row + m]; }
    acc += d * W[m * P.H + j];
  }
  return acc;
}

@compute @workgroup_size(WG)
fn lstm_bwd(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  var rec = 0.0;
  if (P.start == 0u) { rec = recurrent_dh(b, j, 4u * H, false); }
  if (P.final_ == 1u) {
    STATE[P.B * P.H + e] = rec;
    return;
  }
  let dh = G[(P.t * P.B + b) * H + j] + rec;
  var dc: f32;
  if (P.start == 1u) { dc = G[(P.T * P.B + b) * H + j]; } else { dc = STATE[e]; }
  let s = (P.t * P.B + b) * 5u * H;
  let i = SAVEF[s + j];
  let f = SAVEF[s + H + j];
  let g = SAVEF[s + 2u * H + j];
  let o = SAVEF[s + 3u * H + j];
  let tc = tanh_(SAVEF[s + 4u * H + j]);
  dc += dh * o * (1.0 - tc * tc);
  var cp: f32;
  if (P.init == 1u) { cp = S0[e]; } else { cp = SAVEF[(P.p * P.B + b) * 5u * H + 4u * H + j]; }
  let d = (P.t * P.B + b) * 4u * H;
  DGX[d + j] = dc * g * i * (1.0 - i);
  DGX[d + H + j] = dc * cp * f * (1.0 - f);
  DGX[d + 2u * H + j] = dc * i * (1.0 - g * g);
  DGX[d + 3u * H + j] = dh * tc * o * (1.0 - o);
  STATE[e] = dc * f;
}

@compute @workgroup_size(WG)
fn gru_bwd(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  var rec = 0.0;
  if (P.start == 0u) { rec = recurrent_dh(b, j, 3u * H, true) + STATE[e]; }
  if (P.final_ == 1u) {
    STATE[P.B * P.H + e] = rec;
    return;
  }
  let dh = G[(P.t * P.B + b) * H + j] + rec;
  let s = (P.t * P.B + b) * 4u * H;
  let r = SAVEF[s + j];
  let z = SAVEF[s + H + j];
  let n = SAVEF[s + 2u * H + j];
  let hn = SAVEF[s + 3u * H + j];
  var hp: f32;
  if (P.init == 1u) { hp = S0[e]; } else { hp = OUTF[(P.p * P.B + b) * H + j]; }
  let dn = dh * (1.0 - z) * (1.0 - n * n);
  let dr = dn * hn * r * (1.0 - r);
  let dz = dh * (hp - n) * z * (1.0 - z);
  let d = (P.t * P.B + b) * 3u * H;
  DGX[d + j] = dr;
  DGX[d + H + j] = dz;
  DGX[d + 2u * H + j] = dn;
  DGH[d + j] = dr;
  DGH[d + H + j] = dz;
  DGH[d + 2u * H + j] = dn * r;
  STATE[e] = dh * z;
}

@compute @workgroup_size(WG)
fn rnn_bwd(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  var rec = 0.0;
  if (P.start == 0u) { rec = recurrent_dh(b, j, H, false); }
  if (P.final_ == 1u) {
    STATE[P.B * P.H + e] = rec;
    return;
  }
  let dh = G[(P.t * P.B + b) * H + j] + rec;
  let h = OUTF[(P.t * P.B + b) * H + j];
  var d: f32;
  if (RELU) { d = select(0.0, dh, h > 0.0); } else { d = dh * (1.0 - h * h); }
  DGX[(P.t * P.B + b) * H + j] = d;
}
