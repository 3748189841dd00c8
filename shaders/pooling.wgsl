// 2-D max and average pooling (NCHW) and their gradients, one invocation per element.
// Gradients are gathers, not scatters: each input pixel sums the outputs whose window
// covers it, so overlapping windows need no atomics and the result is deterministic.
// The argmax of max pooling is the flat index into the unpadded H*W plane (as the CPU
// backend); a padding tap has value -inf and the index it would have.

// The window geometry is specialised as `override` constants (one cached pipeline per
// layer shape), so index arithmetic divides by constants; only the number of planes
// (batch * channels) is a runtime parameter.

struct Params { nc: u32, _p0: u32, _p1: u32, _p2: u32 }

//! include window.wgsl

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(2) var<storage, read> IN: array<f32>;  // x forward, gy backward
@group(0) @binding(3) var<storage, read_write> ARG: array<i32>;  // max pooling's argmax

override WG: u32 = 256u;
override INCLUDE_PAD: bool = true;

//! include common.wgsl

// The output coordinate whose window has a tap at padded offset t (t = o * stride), or
// -1 when none has: what the gradients gather from.
fn out_of_tap(t: i32, stride: u32, n_out: u32) -> i32 {
  if (t < 0 || t % i32(stride) != 0 || t / i32(stride) >= i32(n_out)) { return -1; }
  return t / i32(stride);
}

@compute @workgroup_size(WG)
fn maxpool(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  let hw = HO * WO;
  if (i >= P.nc * hw) { return; }
  let plane = i / hw;
  let oy = i32((i % hw) / WO * SH) - PH;
  let ox = i32((i % hw) % WO * SW) - PW;
  var best = f32_bits(0xff800000u);
  var arg = 0;
  var first = true;
  for (var ki = 0u; ki < KH; ki++) {
    let y = oy + i32(ki * DH);
    for (var kj = 0u; kj < KW; kj++) {
      let x = ox + i32(kj * DW);
      var v = f32_bits(0xff800000u);
      if (y >= 0 && x >= 0 && y < i32(H) && x < i32(W)) {
        v = IN[(plane * H + u32(y)) * W + u32(x)];
      }
      if (first || v > best) {
        best = v;
        arg = y * i32(W) + x;
        first = false;
      }
    }
  }
  OUT[i] = best;
  ARG[i] = arg;
}

// d input: each pixel visits the (at most kh * kw) outputs whose window tap lands on it.
@compute @workgroup_size(WG)
fn maxpool_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  let hw = H * W;
  if (i >= P.nc * hw) { return; }
  let plane = i / hw;
  let q = i32(i % hw);
  let y = q / i32(W);
  let x = q % i32(W);
  var acc = 0.0;
  for (var ki = 0u; ki < KH; ki++) {
    let oy = out_of_tap(y + PH - i32(ki * DH), SH, HO);
    if (oy < 0) { continue; }
    for (var kj = 0u; kj < KW; kj++) {
      let ox = out_of_tap(x + PW - i32(kj * DW), SW, WO);
      if (ox < 0) { continue; }
      let o = (plane * HO + u32(oy)) * WO + u32(ox);
      if (ARG[o] == q) { acc += IN[o]; }
    }
  }
  OUT[i] = acc;
}

// d input when the window geometry is unknown: scan every output of the plane.
@compute @workgroup_size(WG)
fn maxpool_grad_scan(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  let hw = H * W;
  if (i >= P.nc * hw) { return; }
  let plane = i / hw;
  let q = i32(i % hw);
  var acc = 0.0;
  let n_out = HO * WO;
  for (var o = plane * n_out; o < (plane + 1u) * n_out; o++) {
    if (ARG[o] == q) { acc += IN[o]; }
  }
  OUT[i] = acc;
}

fn avg_count(oy: i32, ox: i32) -> f32 {
  if (INCLUDE_PAD) { return f32(KH * KW); }
  let y0 = max(oy, 0);
  let y1 = min(oy + i32(KH), i32(H));
  let x0 = max(ox, 0);
  let x1 = min(ox + i32(KW), i32(W));
  return f32(max(y1 - y0, 0) * max(x1 - x0, 0));
}

@compute @workgroup_size(WG)
fn avgpool(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  let hw = HO * WO;
  if (i >= P.nc * hw) { return; }
  let plane = i / hw;
  let oy = i32((i % hw) / WO * SH) - PH;
  let ox = i32((i % hw) % WO * SW) - PW;
  var acc = 0.0;
  for (var ki = 0; ki < i32(KH); ki++) {
    let y = oy + ki;
    if (y < 0 || y >= i32(H)) { continue; }
    for (var kj = 0; kj < i32(KW); kj++) {
      let x = ox + kj;
      if (x < 0 || x >= i32(W)) { continue; }
      acc += IN[(plane * H + u32(y)) * W + u32(x)];
    }
  }
  OUT[i] = acc / avg_count(oy, ox);
}

@compute @workgroup_size(WG)
fn avgpool_grad(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear(gid, nwg);
  let hw = H * W;
  if (i >= P.nc * hw) { return; }
  let plane = i / hw;
  let y = i32((i % hw) / W);
  let x = i32((i % hw) % W);
  var acc = 0.0;
  for (var ki = 0; ki < i32(KH); ki++) {
    let oy = out_of_tap(y + PH - ki, SH, HO);
    if (oy < 0) { continue; }
    for (var kj = 0; kj < i32(KW); kj++) {
      let ox = out_of_tap(x + PW - kj, SW, WO);
      if (ox < 0) { continue; }
      let o = (plane * HO + u32(oy)) * WO + u32(ox);
      acc += IN[o] / avg_count(oy * i32(SH) - PH, ox * i32(SW) - PW);
    }
  }
  OUT[i] = acc;
}
