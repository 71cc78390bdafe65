//! Decode-shaped projection kernels: the hand-written INT8 kernel against burn's f32 matmul
//! (flex backend) on the same shapes in the same run. Read the ratio, not the absolute times.
//!
//!   cargo bench --bench kernels

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use workbench::quant::Int8Linear;

/// SmolLM2-135M projection shapes (in, out): attention, MLP up/gate, MLP down, output head.
const SHAPES: [(usize, usize); 4] = [(576, 576), (576, 1536), (1536, 576), (576, 49152)];

fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32) - 0.5
        })
        .collect()
}

fn decode_projection(c: &mut Criterion) {
    let device = workbench::backend::inference_device();
    let mut g = c.benchmark_group("decode_projection");
    for (inp, out) in SHAPES {
        let w = pseudo(inp * out, 1);
        let x = pseudo(inp, 2);
        g.throughput(Throughput::Bytes((inp * out * 4) as u64));
        let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [inp, out]), &device);
        g.bench_with_input(
            BenchmarkId::new("burn_f32", format!("{inp}x{out}")),
            &x,
            |b, x| {
                b.iter(|| {
                    let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, inp]), &device);
                    workbench::backend::to_vec(xt.matmul(wt.clone()))
                })
            },
        );
        let q = Int8Linear::from_rows(&w, out, inp, None);
        g.bench_with_input(
            BenchmarkId::new("int8", format!("{inp}x{out}")),
            &x,
            |b, x| b.iter(|| q.forward(x, 1)),
        );
    }
    g.finish();
}

criterion_group!(benches, decode_projection);
criterion_main!(benches);
