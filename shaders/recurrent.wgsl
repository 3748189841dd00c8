// Fused recurrent steps (RNN, LSTM, GRU): one dispatch per time step does the recurrent
// product h_prev @ W_hh^T AND the gate math, instead of a GEMM plus a dozen elementwise
// kernels. An invocation owns one (batch row b, hidden unit j); the input projection of
// every step (GX = X @ W_ih^T + b_ih, (T, B, G*H)) is one GEMM before the loop.
// Gate orders are PyTorch's: LSTM i, f, g, o; GRU r, z, n. The math and its reference
// are in engine/nn/sequence_kernels.py and engine/nn/sequence_functional.py.
//
// Forward (entry *_fwd, dispatched for t in the scan's order):
//   OUT  (T + 1, B, H)  h_t in time order; LSTM also c_T in row T
//   SAVE (T, B, S)      what backward needs: LSTM i, f, g, o, c (S = 5H); GRU r, z, n,
//                       W_hn h + b_hn (S = 4H); unused by RNN
// The backward steps are in recurrent_grad.wgsl.

struct Params {
  T: u32, B: u32, H: u32, t: u32,  // t: this step's time index
  p: u32, init: u32,               // p: the time index of the state it starts from;
  _p0: u32, _p1: u32,              // init == 1: it starts from h0 (and c0) instead
}

@group(0) @binding(0) var<uniform> P: Params;

override WG: u32 = 64u;
override HAS_BIAS: bool = true;
override RELU: bool = false;

//! include activation.wgsl
//! include common.wgsl

// ---------------------------------------------------------------- forward

@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read_write> SAVE: array<f32>;
@group(0) @binding(3) var<storage, read> GX: array<f32>;
@group(0) @binding(4) var<storage, read> WHT: array<f32>;   // W_hh^T, (H, G*H)
@group(0) @binding(5) var<storage, read> BHH: array<f32>;
@group(0) @binding(6) var<storage, read> H0: array<f32>;
@group(0) @binding(7) var<storage, read> C0: array<f32>;

fn h_prev(b: u32, k: u32) -> f32 {
  if (P.init == 1u) { return H0[b * P.H + k]; }
  return OUT[(P.p * P.B + b) * P.H + k];
}

fn bias(q: u32) -> f32 {
  if (HAS_BIAS) { return BHH[q]; }
  return 0.0;
}

@compute @workgroup_size(WG)
fn lstm_fwd(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  let g4 = 4u * H;
  let row = (P.t * P.B + b) * g4;
  var a0 = GX[row + j] + bias(j);
  var a1 = GX[row + H + j] + bias(H + j);
  var a2 = GX[row + 2u * H + j] + bias(2u * H + j);
  var a3 = GX[row + 3u * H + j] + bias(3u * H + j);
  for (var k = 0u; k < H; k++) {
    let hk = h_prev(b, k);
    let w = k * g4 + j;
    a0 += hk * WHT[w];
    a1 += hk * WHT[w + H];
    a2 += hk * WHT[w + 2u * H];
    a3 += hk * WHT[w + 3u * H];
  }
  let i = sigmoid_(a0);
  let f = sigmoid_(a1);
  let g = tanh_(a2);
  let o = sigmoid_(a3);
  var cp: f32;
  if (P.init == 1u) { cp = C0[e]; } else { cp = SAVE[(P.p * P.B + b) * 5u * H + 4u * H + j]; }
  let c = f * cp + i * g;
  let s = (P.t * P.B + b) * 5u * H;
  SAVE[s + j] = i;
  SAVE[s + H + j] = f;
  SAVE[s + 2u * H + j] = g;
  SAVE[s + 3u * H + j] = o;
  SAVE[s + 4u * H + j] = c;
  OUT[(P.t * P.B + b) * H + j] = o * tanh_(c);
  OUT[(P.T * P.B + b) * H + j] = c;  // c_T: the last step's write stays
}

@compute @workgroup_size(WG)
fn gru_fwd(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  let g3 = 3u * H;
  var r = bias(j);
  var z = bias(H + j);
  var hn = bias(2u * H + j);
  for (var k = 0u; k < H; k++) {
    let hk = h_prev(b, k);
    let w = k * g3 + j;
    r += hk * WHT[w];
    z += hk * WHT[w + H];
    hn += hk * WHT[w + 2u * H];
  }
  let row = (P.t * P.B + b) * g3;
  r = sigmoid_(GX[row + j] + r);
  z = sigmoid_(GX[row + H + j] + z);
  let n = tanh_(GX[row + 2u * H + j] + r * hn);
  let s = (P.t * P.B + b) * 4u * H;
  SAVE[s + j] = r;
  SAVE[s + H + j] = z;
  SAVE[s + 2u * H + j] = n;
  SAVE[s + 3u * H + j] = hn;
  OUT[(P.t * P.B + b) * H + j] = n + z * (h_prev(b, j) - n);
}

@compute @workgroup_size(WG)
fn rnn_fwd(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  let H = P.H;
  if (e >= P.B * H) { return; }
  let b = e / H;
  let j = e % H;
  var a = GX[(P.t * P.B + b) * H + j] + bias(j);
  for (var k = 0u; k < H; k++) {
    a += h_prev(b, k) * WHT[k * H + j];
  }
  if (RELU) { a = max(a, 0.0); } else { a = tanh_(a); }
  OUT[(P.t * P.B + b) * H + j] = a;
}
