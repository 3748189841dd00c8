// Data movement and indexing: strided copies (permute, broadcast, slicing, pad, concat),
// gathers through a flat offset list (advanced indexing), deterministic scatter-add through
// a host-built CSR list (index_add), and take_along / put_along along one axis.
//
// Arrays are array<u32>: copies move bits and work for every dtype. Sums (segment_sum,
// put_along) are f32. Shapes and strides hold up to 8 dims; strides are in elements and
// signed (a reversed slice has negative strides).

struct Params {
  n: u32, ndim: u32, axis: u32, len: u32,
  off1: i32, off2: i32, _p0: u32, _p1: u32,
  shape: array<vec4<u32>, 2>,
  s1: array<vec4<i32>, 2>,
  s2: array<vec4<i32>, 2>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<storage, read> SRC: array<u32>;
@group(0) @binding(3) var<storage, read> IDX: array<i32>;
@group(0) @binding(4) var<storage, read> IDX2: array<i32>;

override WG: u32 = 256u;

//! include common.wgsl

fn shp(d: u32) -> u32 { return P.shape[d / 4u][d % 4u]; }
fn st1(d: u32) -> i32 { return P.s1[d / 4u][d % 4u]; }
fn st2(d: u32) -> i32 { return P.s2[d / 4u][d % 4u]; }

// SRC (strides s1, offset off1) -> OUT (strides s2, offset off2) over P.shape.
@compute @workgroup_size(WG)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var rem = i;
  var so = P.off1;
  var dst = P.off2;
  for (var d = i32(P.ndim) - 1; d >= 0; d--) {
    let s = shp(u32(d));
    let c = i32(rem % s);
    rem = rem / s;
    so += c * st1(u32(d));
    dst += c * st2(u32(d));
  }
  OUT[u32(dst)] = SRC[u32(so)];
}

// OUT[i] = SRC[IDX[i]]
@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  OUT[i] = SRC[u32(IDX[i])];
}

// OUT[o] = sum of SRC[IDX[j]] for j in [IDX2[o], IDX2[o + 1]): IDX lists the source
// elements sorted (stably) by destination, IDX2 the start of each destination's run.
// Summing in list order matches NumPy's np.add.at exactly in order.
@compute @workgroup_size(WG)
fn segment_sum(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = linear(gid, nwg);
  if (o >= P.n) { return; }
  var acc = 0.0;
  for (var j = IDX2[o]; j < IDX2[o + 1u]; j++) {
    acc += bitcast<f32>(SRC[u32(IDX[j])]);
  }
  OUT[o] = bitcast<u32>(acc);
}

// np.take_along_axis: P.shape is the output's, s1 the source's strides (0 on broadcast
// dims), s2 the index array's; P.len the source's length along P.axis.
@compute @workgroup_size(WG)
fn take_along(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var rem = i;
  var so = 0;
  var io = 0;
  for (var d = i32(P.ndim) - 1; d >= 0; d--) {
    let s = shp(u32(d));
    let c = i32(rem % s);
    rem = rem / s;
    io += c * st2(u32(d));
    if (u32(d) != P.axis) { so += c * st1(u32(d)); }
  }
  var k = IDX[io];
  if (k < 0) { k += i32(P.len); }
  OUT[i] = SRC[u32(so + k * st1(P.axis))];
}

// take_along's gradient: zeros(shape) plus SRC (values, strides s1) added where IDX
// (strides s2) points. Each output element loops over the P.len index entries of its line,
// which is deterministic and cheap for the usual case of one index per line.
@compute @workgroup_size(WG)
fn put_along(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  var rem = i;
  var vo = 0;
  var io = 0;
  var j = 0;
  for (var d = i32(P.ndim) - 1; d >= 0; d--) {
    let s = shp(u32(d));
    let c = i32(rem % s);
    rem = rem / s;
    if (u32(d) == P.axis) { j = c; } else { vo += c * st1(u32(d)); io += c * st2(u32(d)); }
  }
  let n_axis = i32(shp(P.axis));
  var acc = 0.0;
  for (var k = 0; k < i32(P.len); k++) {
    var t = IDX[io + k * st2(P.axis)];
    if (t < 0) { t += n_axis; }
    if (t == j) { acc += bitcast<f32>(SRC[u32(vo + k * st1(P.axis))]); }
  }
  OUT[i] = bitcast<u32>(acc);
}
