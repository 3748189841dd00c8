// Elementwise kernels: unary math and activations, binary ops with NumPy broadcasting,
// where/select, clip, dtype casts and fills.
//
// Every buffer is array<u32>: a value's bits are read according to its storage KIND
// (0 = f32, 1 = i32, 2 = bool as 0/1), so one shader serves every dtype. Math runs in f32,
// or in i32 when INT_MATH is set (integer and bool tensors). Specialisation is entirely by
// `override` constants; the Python side sets OP, the kinds and the addressing mode.
//
// Addressing: with BCAST unset, every array operand has the output's shape and is indexed
// by the output's linear index. With BCAST set, the output index is split into coordinates
// (up to 8 dims, P.shape) and each operand uses its own element strides (0 on broadcast
// dims). SCALAR_A / SCALAR_B take that operand from the parameters (P.fa/P.ia, P.fb/P.ib).

struct Params {
  n: u32, ndim: u32, ia: i32, ib: i32,
  fa: f32, fb: f32, lo: f32, hi: f32,
  shape: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
  sc: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<u32>;
@group(0) @binding(2) var<storage, read> A: array<u32>;
@group(0) @binding(3) var<storage, read> B: array<u32>;
@group(0) @binding(4) var<storage, read> C: array<u32>;

override WG: u32 = 256u;
override OP: u32 = 0u;
override KIND_A: u32 = 0u;
override KIND_B: u32 = 0u;
override KIND_C: u32 = 0u;
override KIND_OUT: u32 = 0u;
override INT_MATH: bool = false;
override BCAST: bool = false;
override SCALAR_A: bool = false;
override SCALAR_B: bool = false;
override HAS_LO: bool = false;
override HAS_HI: bool = false;

// -- storage kinds -------------------------------------------------------------------------

//! include common.wgsl
//! include activation.wgsl

fn to_f(bits: u32, kind: u32) -> f32 {
  if (kind == 0u) { return bitcast<f32>(bits); }
  if (kind == 1u) { return f32(bitcast<i32>(bits)); }
  return f32(bits);
}

fn to_i(bits: u32, kind: u32) -> i32 {
  if (kind == 0u) { return i32(bitcast<f32>(bits)); }
  if (kind == 1u) { return bitcast<i32>(bits); }
  return i32(bits);
}

fn from_f(v: f32, kind: u32) -> u32 {
  if (kind == 0u) { return bitcast<u32>(v); }
  if (kind == 1u) { return bitcast<u32>(i32(v)); }
  return select(0u, 1u, v != 0.0);
}

fn from_i(v: i32, kind: u32) -> u32 {
  if (kind == 0u) { return bitcast<u32>(f32(v)); }
  if (kind == 1u) { return bitcast<u32>(v); }
  return select(0u, 1u, v != 0);
}

// -- addressing ----------------------------------------------------------------------------

// Offsets of the output element i in A, B and C.
fn offsets(i: u32) -> vec3<u32> {
  if (!BCAST) { return vec3<u32>(i, i, i); }
  var rem = i;
  var o = vec3<u32>(0u, 0u, 0u);
  for (var d = i32(P.ndim) - 1; d >= 0; d--) {
    let s = P.shape[u32(d) / 4u][u32(d) % 4u];
    let c = rem % s;
    rem = rem / s;
    o += c * vec3<u32>(P.sa[u32(d) / 4u][u32(d) % 4u], P.sb[u32(d) / 4u][u32(d) % 4u],
                       P.sc[u32(d) / 4u][u32(d) % 4u]);
  }
  return o;
}

fn a_f(o: u32) -> f32 { if (SCALAR_A) { return P.fa; } return to_f(A[o], KIND_A); }
fn b_f(o: u32) -> f32 { if (SCALAR_B) { return P.fb; } return to_f(B[o], KIND_B); }
fn a_i(o: u32) -> i32 { if (SCALAR_A) { return P.ia; } return to_i(A[o], KIND_A); }
fn b_i(o: u32) -> i32 { if (SCALAR_B) { return P.ib; } return to_i(B[o], KIND_B); }

// -- math ------------------------------------------------------------------------------------

fn erf_(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.5) {  // Taylor series: keeps relative accuracy near 0
    let x2 = x * x;
    return 1.1283791671 * x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (0.1 + x2 * (-1.0 / 42.0
           + x2 * (1.0 / 216.0 + x2 * (-1.0 / 1320.0))))));
  }
  // Abramowitz & Stegun 7.1.26, |error| < 1.5e-7
  let t = 1.0 / (1.0 + 0.3275911 * ax);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
             + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - poly * exp(-ax * ax));
}

fn pow_(x: f32, y: f32) -> f32 {
  if (y == 0.0) { return 1.0; }
  if (x >= 0.0) { return pow(x, y); }
  if (y != floor(y)) { return f32_bits(0x7fc00000u); }  // NaN, as NumPy
  let r = pow(-x, y);
  return select(r, -r, fract(y * 0.5) != 0.0);
}

fn unary_f(x: f32) -> f32 {
  switch OP {
    case 0u: { return -x; }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return sqrt(x); }
    case 4u: { return abs(x); }
    case 5u: { return sign(x); }
    case 6u: { return max(x, 0.0); }
    case 7u: { return tanh_(x); }
    case 8u: { return sigmoid_(x); }
    default: { return erf_(x); }
  }
}

fn unary_i(x: i32) -> i32 {
  switch OP {
    case 0u: { return -x; }
    case 4u: { return abs(x); }
    case 5u: { return sign(x); }
    default: { return max(x, 0); }
  }
}

fn binary_f(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
    case 4u: { return pow_(x, y); }
    case 5u: { return max(x, y); }
    case 6u: { return min(x, y); }
    case 7u: { return select(0.0, 1.0, x > y); }
    case 8u: { return select(0.0, 1.0, x >= y); }
    case 9u: { return select(0.0, 1.0, x < y); }
    case 10u: { return select(0.0, 1.0, x <= y); }
    case 11u: { return select(0.0, 1.0, x == y); }
    default: { return select(0.0, 1.0, x != y); }
  }
}

fn binary_i(x: i32, y: i32) -> i32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 4u: { return i32(round(pow_(f32(x), f32(y)))); }
    case 5u: { return max(x, y); }
    case 6u: { return min(x, y); }
    case 7u: { return select(0, 1, x > y); }
    case 8u: { return select(0, 1, x >= y); }
    case 9u: { return select(0, 1, x < y); }
    case 10u: { return select(0, 1, x <= y); }
    case 11u: { return select(0, 1, x == y); }
    default: { return select(0, 1, x != y); }
  }
}

// -- entry points ------------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  if (INT_MATH) {
    OUT[i] = from_i(unary_i(to_i(A[i], KIND_A)), KIND_OUT);
  } else {
    OUT[i] = from_f(unary_f(to_f(A[i], KIND_A)), KIND_OUT);
  }
}

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  let o = offsets(i);
  if (INT_MATH) {
    OUT[i] = from_i(binary_i(a_i(o.x), b_i(o.y)), KIND_OUT);
  } else {
    OUT[i] = from_f(binary_f(a_f(o.x), b_f(o.y)), KIND_OUT);
  }
}

// where(C, A, B): C is the condition.
@compute @workgroup_size(WG)
fn select_(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  let o = offsets(i);
  let cond = select(to_i(C[o.z], KIND_C) != 0, bitcast<f32>(C[o.z]) != 0.0, KIND_C == 0u);
  if (INT_MATH) {
    OUT[i] = from_i(select(b_i(o.y), a_i(o.x), cond), KIND_OUT);
  } else {
    OUT[i] = from_f(select(b_f(o.y), a_f(o.x), cond), KIND_OUT);
  }
}

@compute @workgroup_size(WG)
fn clip(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  if (INT_MATH) {
    var x = to_i(A[i], KIND_A);
    if (HAS_LO) { x = max(x, i32(ceil(P.lo))); }
    if (HAS_HI) { x = min(x, i32(floor(P.hi))); }
    OUT[i] = from_i(x, KIND_OUT);
  } else {
    var x = to_f(A[i], KIND_A);
    if (HAS_LO) { x = max(x, P.lo); }
    if (HAS_HI) { x = min(x, P.hi); }
    OUT[i] = from_f(x, KIND_OUT);
  }
}

// Dtype conversion: truncation toward zero for float -> int, as NumPy.
@compute @workgroup_size(WG)
fn astype(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  if (KIND_A == 0u) {
    OUT[i] = from_f(bitcast<f32>(A[i]), KIND_OUT);
  } else {
    OUT[i] = from_i(to_i(A[i], KIND_A), KIND_OUT);
  }
}

// Fill with a bit pattern (P.ia, already in the output's storage kind).
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  if (i >= P.n) { return; }
  OUT[i] = bitcast<u32>(P.ia);
}
