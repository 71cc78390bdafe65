//! The one place that names burn backends and devices. The default build runs on burn's
//! pure-Rust `flex` CPU backend; the `cuda` feature switches to burn-cuda.

use burn::tensor::{Device, Tensor};

/// The inference device: CUDA when built with `--features cuda` and a GPU is present, else flex (CPU).
pub fn inference_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DeviceType;
        if !Device::enumerate(DeviceType::Cuda).is_empty() {
            return Device::cuda(0);
        }
    }
    Device::flex()
}

/// The training device: the inference device wrapped for automatic differentiation.
pub fn training_device() -> Device {
    inference_device().autodiff()
}

/// A short name of the device for reports.
pub fn device_name(device: &Device) -> String {
    format!("{device:?}")
}

/// Copies a float tensor to a host vector (row-major).
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    let data = t.into_data();
    if data.dtype() == burn::tensor::DType::F32 {
        data.try_into_vec::<f32>().unwrap_or_default()
    } else {
        data.convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }
}

/// Seeds burn's random generator on `device` (dropout).
pub fn seed(device: &Device, seed: u64) {
    device.seed(seed);
}
