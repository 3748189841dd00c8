// Reductions (sum, max, min) and argmax over the middle axis of a contiguous (A, L, C) view;
// the backend merges and permutes axes so that every reduction has this form.
//
// `*_rows` (C == 1): a workgroup per output, its invocations stride over the row and then
// combine in a parallel tree in workgroup memory. A row may be split into P.nch chunks of
// P.chunk elements (outputs r * nch + ch), so a long row uses many workgroups; the backend
// then reduces the partial results in a second pass.
// `*_strided`: an invocation per output (a, c), looping over l (coalesced over c); used for
// short rows and for reducing leading axes.
//
// Values are carried as u32 bits: f32, or i32 when INT_MATH (integer and bool inputs),
// read and written according to the storage kinds KIND_IN / KIND_OUT (0 f32, 1 i32, 2 bool).

struct Params {
  A: u32, L: u32, C: u32, nch: u32,
  chunk: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<storage, read> X: array<u32>;

override WG: u32 = 256u;
override OP: u32 = 0u;  // 0 sum, 1 max, 2 min
override KIND_IN: u32 = 0u;
override KIND_OUT: u32 = 0u;
override INT_MATH: bool = false;

var<workgroup> tree: array<u32, WG>;
var<workgroup> tree_idx: array<u32, WG>;

//! include common.wgsl

fn load(i: u32) -> u32 {
  let b = X[i];
  if (INT_MATH) {
    if (KIND_IN == 0u) { return bitcast<u32>(i32(bitcast<f32>(b))); }
    return b;  // i32 bits, or bool 0/1 (the same bits as i32 0/1)
  }
  if (KIND_IN == 0u) { return b; }
  if (KIND_IN == 1u) { return bitcast<u32>(f32(bitcast<i32>(b))); }
  return bitcast<u32>(f32(b));
}

fn store(i: u32, v: u32) {
  if (INT_MATH) {
    let x = bitcast<i32>(v);
    if (KIND_OUT == 0u) { OUT[i] = bitcast<u32>(f32(x)); }
    else if (KIND_OUT == 1u) { OUT[i] = v; }
    else { OUT[i] = select(0u, 1u, x != 0); }
  } else {
    let x = bitcast<f32>(v);
    if (KIND_OUT == 0u) { OUT[i] = v; }
    else if (KIND_OUT == 1u) { OUT[i] = bitcast<u32>(i32(x)); }
    else { OUT[i] = select(0u, 1u, x != 0.0); }
  }
}

fn identity() -> u32 {
  if (INT_MATH) {
    if (OP == 0u) { return 0u; }
    if (OP == 1u) { return 0x80000000u; }  // i32 min
    return 0x7fffffffu;
  }
  if (OP == 0u) { return 0u; }  // +0.0
  if (OP == 1u) { return 0xff800000u; }  // -inf
  return 0x7f800000u;  // +inf
}

fn combine(x: u32, y: u32) -> u32 {
  if (INT_MATH) {
    let a = bitcast<i32>(x);
    let b = bitcast<i32>(y);
    if (OP == 0u) { return bitcast<u32>(a + b); }
    if (OP == 1u) { return bitcast<u32>(max(a, b)); }
    return bitcast<u32>(min(a, b));
  }
  let a = bitcast<f32>(x);
  let b = bitcast<f32>(y);
  if (OP == 0u) { return bitcast<u32>(a + b); }
  if (OP == 1u) { return bitcast<u32>(max(a, b)); }
  return bitcast<u32>(min(a, b));
}

fn value(i: u32) -> f32 {  // argmax compares as f32
  let b = X[i];
  if (KIND_IN == 0u) { return bitcast<f32>(b); }
  if (KIND_IN == 1u) { return f32(bitcast<i32>(b)); }
  return f32(b);
}

fn out_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(local_invocation_index) li: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = out_index(wid, nwg);
  let valid = o < P.A * P.nch;
  var acc = identity();
  if (valid) {
    let r = o / P.nch;
    let start = (o % P.nch) * P.chunk;
    let stop = min(start + P.chunk, P.L);
    for (var l = start + li; l < stop; l += WG) {
      acc = combine(acc, load(r * P.L + l));
    }
  }
  tree[li] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { tree[li] = combine(tree[li], tree[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u && valid) { store(o, tree[0]); }
}

@compute @workgroup_size(WG)
fn reduce_strided(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= P.A * P.C) { return; }
  let a = o / P.C;
  let c = o % P.C;
  var acc = identity();
  for (var l = 0u; l < P.L; l++) {
    acc = combine(acc, load((a * P.L + l) * P.C + c));
  }
  store(o, acc);
}

// argmax: the first index of the maximum, as NumPy. Output is i32.
@compute @workgroup_size(WG)
fn argmax_rows(@builtin(local_invocation_index) li: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = out_index(wid, nwg);
  let valid = o < P.A;
  var best = f32_bits(0xff800000u);
  var bi = 0xffffffffu;
  if (valid) {
    for (var l = li; l < P.L; l += WG) {
      let v = value(o * P.L + l);
      if (v > best || bi == 0xffffffffu) { best = v; bi = l; }
    }
  }
  tree[li] = bitcast<u32>(best);
  tree_idx[li] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let v = bitcast<f32>(tree[li + s]);
      let j = tree_idx[li + s];
      let u = bitcast<f32>(tree[li]);
      let i = tree_idx[li];
      if (j != 0xffffffffu && (i == 0xffffffffu || v > u || (v == u && j < i))) {
        tree[li] = bitcast<u32>(v);
        tree_idx[li] = j;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u && valid) { OUT[o] = tree_idx[0]; }
}

@compute @workgroup_size(WG)
fn argmax_strided(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= P.A * P.C) { return; }
  let a = o / P.C;
  let c = o % P.C;
  var best = value(a * P.L * P.C + c);
  var bi = 0u;
  for (var l = 1u; l < P.L; l++) {
    let v = value((a * P.L + l) * P.C + c);
    if (v > best) { best = v; bi = l; }
  }
  OUT[o] = bi;
}
