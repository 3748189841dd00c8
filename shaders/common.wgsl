// Helpers shared by the kernel files. A file that says `//! include common.wgsl` gets
// this text in place of that line (WGSL has no includes: see shader_source in
// engine/backends/gpu/device.py). The including file declares `override WG: u32`.

// -inf and NaN only as run-time values: WGSL forbids non-finite constant expressions
// (Chrome's Tint rejects `bitcast<f32>(0xff800000u)`, wgpu-native's Naga accepts it).
fn f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }

// The flat index of a 1-D problem dispatched as a 2-D grid of WG-wide workgroups (a grid
// wider than the 65,535-workgroup limit continues in y).
fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}
