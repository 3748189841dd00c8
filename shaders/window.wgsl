// The geometry of a 2-D sliding window (conv2d.wgsl, pooling.wgsl; included with
// `//! include window.wgsl`), as override constants: input H x W, output HO x WO, kernel
// KH x KW, stride SH, SW, dilation DH, DW, padding PH, PW. The backend sets them by these
// names, one cached pipeline per layer shape, so index arithmetic divides by constants.

override H: u32 = 1u;
override W: u32 = 1u;
override HO: u32 = 1u;
override WO: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override DH: u32 = 1u;
override DW: u32 = 1u;
override PH: i32 = 0;
override PW: i32 = 0;
