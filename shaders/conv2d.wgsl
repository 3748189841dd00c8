// 2-D convolution (NCHW, weights (C_out, C_in/groups, kH, kW)) as an implicit GEMM: the
// im2col matrix is never materialised; the tile loaders compute each element's source
// address (or a zero for padding) on the fly. The tiling is matmul.wgsl's: BM x BN tiles of
// the output matrix, BK-deep slabs in workgroup memory, a 4 x 4 register block per
// invocation. MODE selects which product this is (per group g, workgroup z = g * splits + s):
//
//   MODE 0, forward:      y[n, co, oh, ow]  rows co,  cols (n, oh, ow), k = (ci, i, j)
//                         S1 = x, S2 = w
//   MODE 1, grad input:   gx[n, ci, h, w]   rows ci,  cols (n, h, w),   k = (co, i, j)
//                         S1 = gy, S2 = w   (taps that do not land on the stride grid are 0)
//   MODE 2, grad weight:  gw[co, ci, i, j]  rows co,  cols (ci, i, j),  k = (n, oh, ow)
//                         S1 = gy, S2 = x   split-K: chunk s of k writes partial sums to
//                         OUT[s * C_out * cols + ...], summed afterwards by the backend.

// The layer geometry is specialised into the pipeline as `override` constants (one
// pipeline per layer shape and pass, cached): the per-element index arithmetic then divides
// by constants, which compilers turn into multiplies; runtime integer division is slow on
// GPUs and scalarised on CPU adapters such as lavapipe. Only sizes that depend on the batch
// (N, and the split-K chunking) stay in the uniform.

struct Params {
  M: u32, N: u32, K: u32, kchunk: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> S1: array<f32>;
@group(0) @binding(3) var<storage, read> S2: array<f32>;

override GROUPS: u32 = 1u;
override SPLITS: u32 = 1u;
override C_IN: u32 = 1u;
override C_OUT: u32 = 1u;
//! include window.wgsl
override MODE: u32 = 0u;
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;

var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;

//! include tile.wgsl

// Element (m, k) of the left matrix for group g.
fn a_at(g: u32, m: u32, k: u32) -> f32 {
  let khw = KH * KW;
  if (MODE == 0u) {  // w[g*cog + m, k]
    return S2[(g * P.M + m) * P.K + k];
  }
  if (MODE == 1u) {  // w[g*cog + co, m, i, j] with k = (co, ij)
    let co = k / khw;
    return S2[((g * (C_OUT / GROUPS) + co) * P.M + m) * khw + k % khw];
  }
  // gy[n, g*cog + m, p] with k = (n, p)
  let hw = HO * WO;
  return S1[((k / hw) * C_OUT + g * P.M + m) * hw + k % hw];
}

// Element (k, col) of the right matrix for group g.
fn b_at(g: u32, k: u32, col: u32) -> f32 {
  let khw = KH * KW;
  if (MODE == 0u) {  // x at output pixel col = (n, oh, ow), tap k = (ci, i, j)
    let cg = C_IN / GROUPS;
    let hw = HO * WO;
    let n = col / hw;
    let q = col % hw;
    let r = k % khw;
    let y = i32((q / WO) * SH + (r / KW) * DH) - PH;
    let x = i32((q % WO) * SW + (r % KW) * DW) - PW;
    if (y < 0 || x < 0 || y >= i32(H) || x >= i32(W)) { return 0.0; }
    return S1[((n * C_IN + g * cg + k / khw) * H + u32(y)) * W + u32(x)];
  }
  if (MODE == 1u) {  // gy at the output pixel whose tap k = (co, i, j) hits input col
    let hw = H * W;
    let n = col / hw;
    let q = col % hw;
    let r = k % khw;
    let ty = i32(q / W) + PH - i32((r / KW) * DH);
    let tx = i32(q % W) + PW - i32((r % KW) * DW);
    if (ty < 0 || tx < 0) { return 0.0; }
    let oy = u32(ty) / SH;
    let ox = u32(tx) / SW;
    if (oy * SH != u32(ty) || ox * SW != u32(tx) || oy >= HO || ox >= WO) {
      return 0.0;
    }
    let cog = C_OUT / GROUPS;
    return S1[((n * C_OUT + g * cog + k / khw) * HO + oy) * WO + ox];
  }
  // x at pixel k = (n, oh, ow) for weight tap col = (ci, i, j)
  let cg = C_IN / GROUPS;
  let hw = HO * WO;
  let n = k / hw;
  let q = k % hw;
  let r = col % khw;
  let y = i32((q / WO) * SH + (r / KW) * DH) - PH;
  let x = i32((q % WO) * SW + (r % KW) * DW) - PW;
  if (y < 0 || x < 0 || y >= i32(H) || x >= i32(W)) { return 0.0; }
  return S2[((n * C_IN + g * cg + col / khw) * H + u32(y)) * W + u32(x)];
}

fn store(g: u32, s: u32, m: u32, col: u32, v: f32) {
  if (MODE == 0u) {
    let hw = HO * WO;
    OUT[((col / hw) * C_OUT + g * P.M + m) * hw + col % hw] = v;
  } else if (MODE == 1u) {
    let hw = H * W;
    OUT[((col / hw) * C_IN + g * P.M + m) * hw + col % hw] = v;
  } else {
    OUT[(s * C_OUT + g * P.M + m) * P.N + col] = v;
  }
}

@compute @workgroup_size(BN / 4u, BM / 4u, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let threads = (BN / 4u) * (BM / 4u);
  let tid = lid.y * (BN / 4u) + lid.x;
  let g = wid.z / SPLITS;
  let s = wid.z % SPLITS;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let kbeg = s * P.kchunk;
  let kend = min(kbeg + P.kchunk, P.K);
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0),
                                vec4<f32>(0.0));
  for (var k0 = kbeg; k0 < kend; k0 += BK) {
    for (var e = tid; e < BM * BK; e += threads) {
      let m = e / BK;
      let k = e % BK;
      var v = 0.0;
      if (row0 + m < P.M && k0 + k < kend) { v = a_at(g, row0 + m, k0 + k); }
      As[k * (BM / 4u) + m / 4u][m % 4u] = v;
    }
    for (var e = tid; e < BN * BK; e += threads) {
      var n: u32; var k: u32;
      if (MODE == 2u) { n = e / BK; k = e % BK; } else { k = e / BN; n = e % BN; }
      var v = 0.0;
      if (col0 + n < P.N && k0 + k < kend) { v = b_at(g, k0 + k, col0 + n); }
      Bs[k * (BN / 4u) + n / 4u][n % 4u] = v;
    }
    workgroupBarrier();
    tile_fma(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  let col = col0 + lid.x * 4u;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= P.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      if (col + j < P.N) { store(g, s, row, col + j, acc[i][j]); }
    }
  }
}
