// Activations that never overflow, shared by kernel files (elementwise's unary tanh and
// sigmoid, the recurrent steps), pasted by `//! include activation.wgsl` (see
// shader_source in engine/backends/gpu/device.py).

fn tanh_(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.25) {  // the series: 1 - e is inaccurate near 0
    let x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0
           + x2 * (62.0 / 2835.0)))));
  }
  let e = exp(-2.0 * min(ax, 20.0));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

fn sigmoid_(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}
