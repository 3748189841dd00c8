// Numerically stable softmax and log-softmax over the middle axis of a contiguous
// (A, L, C) view: subtract the maximum before exponentiating, and compute log-softmax as
// (x - max) - log(sum(exp(x - max))) so it never takes the log of an underflowed 0.
// (Cross-entropy is log_softmax followed by a gather of the label column.)
//
// `softmax_rows` (C == 1, long rows): a workgroup per row with tree reductions for the
// maximum and the sum. `softmax_strided`: an invocation per (a, c) line.

struct Params { A: u32, L: u32, C: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;

override WG: u32 = 256u;
override LOG: bool = false;

var<workgroup> tree: array<f32, WG>;

//! include common.wgsl

fn finish(x: f32, mx: f32, total: f32) -> f32 {
  if (LOG) { return (x - mx) - log(total); }
  return exp(x - mx) / total;
}

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(local_invocation_index) li: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  let valid = row < P.A;
  let base = row * P.L;
  var mx = f32_bits(0xff800000u);
  if (valid) {
    for (var l = li; l < P.L; l += WG) { mx = max(mx, X[base + l]); }
  }
  tree[li] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { tree[li] = max(tree[li], tree[li + s]); }
    workgroupBarrier();
  }
  mx = tree[0];
  workgroupBarrier();
  var total = 0.0;
  if (valid) {
    for (var l = li; l < P.L; l += WG) { total += exp(X[base + l] - mx); }
  }
  tree[li] = total;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { tree[li] = tree[li] + tree[li + s]; }
    workgroupBarrier();
  }
  total = tree[0];
  if (valid) {
    for (var l = li; l < P.L; l += WG) { OUT[base + l] = finish(X[base + l], mx, total); }
  }
}

@compute @workgroup_size(WG)
fn softmax_strided(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= P.A * P.C) { return; }
  let base = (o / P.C) * P.L * P.C + o % P.C;
  var mx = f32_bits(0xff800000u);
  for (var l = 0u; l < P.L; l++) { mx = max(mx, X[base + l * P.C]); }
  var total = 0.0;
  for (var l = 0u; l < P.L; l++) { total += exp(X[base + l * P.C] - mx); }
  for (var l = 0u; l < P.L; l++) {
    OUT[base + l * P.C] = finish(X[base + l * P.C], mx, total);
  }
}
