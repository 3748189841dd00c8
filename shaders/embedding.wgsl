// Embedding lookups: gather whole rows of a table by an integer index array, and the
// gradient, a scatter-add of rows. WGSL has no float atomics, so the scatter is written as
// a gather: each output element (row r, column d) sums the values of every index equal to
// r, in index order. That is deterministic and cheap for embedding-sized batches
// (work ~ rows * columns * indices).

struct Params { n_idx: u32, D: u32, n_rows: u32, _p0: u32 }

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<storage, read> SRC: array<u32>;  // table, or values
@group(0) @binding(3) var<storage, read> IDX: array<i32>;

override WG: u32 = 256u;

//! include common.wgsl

fn row(i: u32) -> u32 {
  let r = IDX[i];
  return u32(select(r, r + i32(P.n_rows), r < 0));
}

// OUT[i, d] = table[IDX[i], d] (any 32-bit dtype)
@compute @workgroup_size(WG)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  if (e >= P.n_idx * P.D) { return; }
  OUT[e] = SRC[row(e / P.D) * P.D + e % P.D];
}

// OUT[r, d] = sum of values[i, d] over i with IDX[i] == r (f32)
@compute @workgroup_size(WG)
fn scatter_rows_add(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = linear(gid, nwg);
  if (e >= P.n_rows * P.D) { return; }
  let r = e / P.D;
  let d = e % P.D;
  var acc = 0.0;
  for (var i = 0u; i < P.n_idx; i++) {
    if (row(i) == r) { acc += bitcast<f32>(SRC[i * P.D + d]); }
  }
  OUT[e] = bitcast<u32>(acc);
}
