// The inner product of the tiled GEMM kernels (matmul.wgsl, conv2d.wgsl; included with
// `//! include tile.wgsl`). The including file declares the workgroup tiles As (BK x BM)
// and Bs (BK x BN) as arrays of vec4 and the override constants BM, BN, BK.

// One BK-deep slab: this invocation's 4 x 4 register block `acc` (rows 4*ty.., columns
// 4*tx..) += As[:, rows] x Bs[:, columns].
fn tile_fma(acc: ptr<function, array<vec4<f32>, 4>>, ty: u32, tx: u32) {
  for (var k = 0u; k < BK; k++) {
    let a = As[k * (BM / 4u) + ty];
    let b = Bs[k * (BN / 4u) + tx];
    (*acc)[0] = fma(vec4<f32>(a.x), b, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a.y), b, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a.z), b, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a.w), b, (*acc)[3]);
  }
}
