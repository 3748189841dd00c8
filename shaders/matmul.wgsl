// Batched matrix multiply C[b] = op(A[b]) @ op(B[b]), op = optional transpose.
//
// `tiled`: each workgroup computes a BM x BN tile of C, staging BK-wide slabs of A and B in
// workgroup memory; each invocation accumulates a 4 x 4 block of C in registers (vec4 rows),
// so every value read from workgroup memory feeds four multiply-adds. The default 64x64x16
// tile uses 8 KiB of workgroup memory and 256 invocations (WebGPU's default limits).
// TRANS_A / TRANS_B read A as (K, M) and B as (N, K) in place, so backward passes need no
// transposed copies. Batch: workgroup z is the batch index; a batch stride of 0 broadcasts.
//
// `naive`: one output per invocation straight from global memory; the benchmark's
// reference point, not used by the engine.

struct Params {
  M: u32, N: u32, K: u32, _pad: u32,
  stride_a: u32, stride_b: u32, stride_c: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> Cm: array<f32>;
@group(0) @binding(2) var<storage, read> Am: array<f32>;
@group(0) @binding(3) var<storage, read> Bm: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BM: u32 = 64u;
override BN: u32 = 64u;
override BK: u32 = 16u;

// As[k * BM/4 + r] holds rows 4r..4r+3 of column k of the A tile; Bs likewise for B's row k.
var<workgroup> As: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> Bs: array<vec4<f32>, BK * BN / 4u>;

//! include tile.wgsl

fn a_at(base: u32, m: u32, k: u32) -> f32 {
  if (m >= P.M || k >= P.K) { return 0.0; }
  if (TRANS_A) { return Am[base + k * P.M + m]; }
  return Am[base + m * P.K + k];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
  if (k >= P.K || n >= P.N) { return 0.0; }
  if (TRANS_B) { return Bm[base + n * P.K + k]; }
  return Bm[base + k * P.N + n];
}

@compute @workgroup_size(BN / 4u, BM / 4u, 1)
fn tiled(@builtin(local_invocation_id) lid: vec3<u32>,
         @builtin(workgroup_id) wid: vec3<u32>) {
  let threads = (BN / 4u) * (BM / 4u);
  let tid = lid.y * (BN / 4u) + lid.x;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let base_a = wid.z * P.stride_a;
  let base_b = wid.z * P.stride_b;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0),
                                vec4<f32>(0.0));
  for (var k0 = 0u; k0 < P.K; k0 += BK) {
    // Stage the tiles; the loop order makes consecutive invocations read consecutive
    // addresses of whichever layout A and B have.
    for (var e = tid; e < BM * BK; e += threads) {
      var m: u32; var k: u32;
      if (TRANS_A) { k = e / BM; m = e % BM; } else { m = e / BK; k = e % BK; }
      As[k * (BM / 4u) + m / 4u][m % 4u] = a_at(base_a, row0 + m, k0 + k);
    }
    for (var e = tid; e < BN * BK; e += threads) {
      var n: u32; var k: u32;
      if (TRANS_B) { n = e / BK; k = e % BK; } else { k = e / BN; n = e % BN; }
      Bs[k * (BN / 4u) + n / 4u][n % 4u] = b_at(base_b, k0 + k, col0 + n);
    }
    workgroupBarrier();
    tile_fma(&acc, lid.y, lid.x);
    workgroupBarrier();
  }
  let base_c = wid.z * P.stride_c;
  let col = col0 + lid.x * 4u;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= P.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      if (col + j < P.N) { Cm[base_c + row * P.N + col + j] = acc[i][j]; }
    }
  }
}

override WG_NAIVE: u32 = 16u;

@compute @workgroup_size(WG_NAIVE, WG_NAIVE, 1)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(workgroup_id) wid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= P.M || n >= P.N) { return; }
  let base_a = wid.z * P.stride_a;
  let base_b = wid.z * P.stride_b;
  var acc = 0.0;
  for (var k = 0u; k < P.K; k++) {
    acc = fma(a_at(base_a, m, k), b_at(base_b, k, n), acc);
  }
  Cm[wid.z * P.stride_c + m * P.N + n] = acc;
}
