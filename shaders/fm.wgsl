// Factorization-machine pairwise interactions of padded sparse rows, forward and backward.
// V is (B, N, K) gathered factor rows, X (B, N) feature values (padding entries are 0), so
// with e = v * x and s_k = sum_n e_nk, Rendle's O(N K) identity gives
//   out[b] = 0.5 * sum_k (s_k^2 - sum_n e_nk^2)       (= sum_{n<m} <v_n, v_m> x_n x_m)
//   gv[b, n, k] = g[b] * x_n * (s_k - e_nk)
//   gx[b, n]    = g[b] * sum_k v_nk * (s_k - e_nk)
// Fused, because the composed version materialises several (B, N, K) temporaries.
// pairwise: a workgroup per row (threads over k, then a tree sum over k).
// pairwise_grad_v: an invocation per (b, k); it also stores s for pairwise_grad_x.
// pairwise_grad_x: an invocation per (b, n), reading s.

struct Params { B: u32, N: u32, K: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;  // out | gv | gx
@group(0) @binding(2) var<storage, read_write> S: array<f32>;    // s (B, K); unused by pairwise
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> X: array<f32>;
@group(0) @binding(5) var<storage, read> G: array<f32>;          // upstream gradient (B)

override WG: u32 = 256u;  // the 1-D kernels
const RW: u32 = 64u;      // threads per row of `pairwise` (a power of two)

var<workgroup> red: array<f32, RW>;

//! include common.wgsl

@compute @workgroup_size(RW)
fn pairwise(@builtin(local_invocation_index) li: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= P.B) { return; }  // uniform per workgroup, so the barriers stay valid
  var acc = 0.0;
  for (var k = li; k < P.K; k += RW) {
    var s = 0.0;
    var q = 0.0;
    for (var n = 0u; n < P.N; n++) {
      let e = V[(b * P.N + n) * P.K + k] * X[b * P.N + n];
      s += e;
      q += e * e;
    }
    acc += s * s - q;
  }
  red[li] = acc;
  workgroupBarrier();
  for (var st = RW / 2u; st > 0u; st >>= 1u) {
    if (li < st) { red[li] += red[li + st]; }
    workgroupBarrier();
  }
  if (li == 0u) { OUT[b] = 0.5 * red[0]; }
}

@compute @workgroup_size(WG)
fn pairwise_grad_v(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  if (e >= P.B * P.K) { return; }
  let b = e / P.K;
  let k = e % P.K;
  var s = 0.0;
  for (var n = 0u; n < P.N; n++) {
    s += V[(b * P.N + n) * P.K + k] * X[b * P.N + n];
  }
  S[e] = s;
  let g = G[b];
  for (var n = 0u; n < P.N; n++) {
    let x = X[b * P.N + n];
    let i = (b * P.N + n) * P.K + k;
    OUT[i] = g * x * (s - V[i] * x);
  }
}

@compute @workgroup_size(WG)
fn pairwise_grad_x(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);  // = b * N + n
  if (e >= P.B * P.N) { return; }
  let b = e / P.N;
  let x = X[e];
  var acc = 0.0;
  for (var k = 0u; k < P.K; k++) {
    let v = V[e * P.K + k];
    acc += v * (S[b * P.K + k] - v * x);
  }
  OUT[e] = G[b] * acc;
}
