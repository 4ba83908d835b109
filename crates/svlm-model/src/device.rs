//! The one place a `--device` name becomes a Burn [`Device`]. Cargo features decide which
//! backends are compiled in; the choice among them is made here at run time.

use anyhow::{Context, bail};
use burn::tensor::{Device, FloatDType};

/// Weight/activation precision asked for on the command line (`--dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightDType {
    #[default]
    F32,
    Bf16,
    F16,
}

impl std::str::FromStr for WeightDType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Self::F32,
            "bf16" | "bfloat16" => Self::Bf16,
            "f16" | "float16" | "fp16" | "half" => Self::F16,
            other => bail!("unknown dtype `{other}` (expected f32, bf16 or f16)"),
        })
    }
}

impl WeightDType {
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
            Self::F16 => FloatDType::F16,
        }
    }

    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Self::F32 => burn::tensor::DType::F32,
            Self::Bf16 => burn::tensor::DType::BF16,
            Self::F16 => burn::tensor::DType::F16,
        }
    }

    /// The precision a device computes floats in by default.
    pub fn of_device(device: &Device) -> Self {
        match device.settings().float_dtype {
            FloatDType::BF16 => Self::Bf16,
            FloatDType::F16 => Self::F16,
            _ => Self::F32,
        }
    }
}

fn parse_index(name: &str, rest: Option<&str>) -> anyhow::Result<usize> {
    match rest {
        None | Some("") => Ok(0),
        Some(i) => i
            .parse()
            .with_context(|| format!("device `{name}`: `{i}` is not a device index")),
    }
}

fn not_compiled(name: &str, feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "device `{name}` needs the `{feature}` backend, which this binary was built without; rebuild with `--features {feature}` (or use --device cpu)"
    )
}

/// A device name as read, before any backend is touched.
enum DeviceName {
    Cpu,
    Cuda(usize),
    /// `vulkan` = the adapter wgpu thinks best (a discrete GPU first; `CUBECL_WGPU_DEFAULT_DEVICE` overrides it),
    /// `vulkan:i` = the i-th discrete GPU, `vulkan:cpu` = a CPU Vulkan driver (lavapipe), which runs the GPU code
    /// path on machines without a GPU.
    Vulkan(burn::tensor::DeviceKind),
    /// libtorch: `None` = its CPU, `Some(i)` = CUDA device i.
    Tch(Option<usize>),
}

fn parse_device_name(name: &str) -> anyhow::Result<DeviceName> {
    use burn::tensor::DeviceKind;
    let lower = name.trim().to_ascii_lowercase();
    let (kind, rest) = match lower.split_once(':') {
        Some((k, r)) => (k, Some(r)),
        None => (lower.as_str(), None),
    };
    Ok(match kind {
        "cpu" | "flex" => {
            if rest.is_some() {
                bail!("device `{name}`: the CPU backend takes no index");
            }
            DeviceName::Cpu
        }
        "cuda" => DeviceName::Cuda(parse_index(name, rest)?),
        "vulkan" => DeviceName::Vulkan(match rest {
            None => DeviceKind::DefaultDevice,
            Some("cpu") => DeviceKind::Cpu,
            Some(_) => DeviceKind::DiscreteGpu(parse_index(name, rest)?),
        }),
        "tch" => DeviceName::Tch(match rest {
            None | Some("cpu") => None,
            Some(r) => match r.strip_prefix("cuda") {
                Some(i) => Some(parse_index(name, Some(i.trim_start_matches(':')))?),
                None => bail!("device `{name}`: expected tch, tch:cpu or tch:cuda[:i]"),
            },
        }),
        _ => {
            bail!("unknown device `{name}` (expected cpu, cuda[:i], vulkan[:i] or tch[:cuda[:i]])")
        }
    })
}

/// Checks that `name` is a device name [`resolve_device`] understands, without opening the device: commands check
/// `--device` before any work, also where the device is used late or not at all. Whether its backend was compiled
/// in is [`resolve_device`]'s answer.
pub fn check_device_name(name: &str) -> anyhow::Result<()> {
    parse_device_name(name).map(|_| ())
}

/// `"cpu"` (the flex backend) | `"cuda[:i]"` | `"vulkan[:i|:cpu]"` | `"tch"` (libtorch CPU) |
/// `"tch:cuda[:i]"`.
pub fn resolve_device(name: &str) -> anyhow::Result<Device> {
    match parse_device_name(name)? {
        DeviceName::Cpu => Ok(Device::flex()),
        DeviceName::Cuda(index) => {
            #[cfg(feature = "cuda")]
            {
                Ok(Device::cuda(index))
            }
            #[cfg(not(feature = "cuda"))]
            {
                let _ = index;
                Err(not_compiled(name, "cuda"))
            }
        }
        DeviceName::Vulkan(kind) => {
            #[cfg(feature = "vulkan")]
            {
                Ok(Device::vulkan(kind))
            }
            #[cfg(not(feature = "vulkan"))]
            {
                let _ = kind;
                Err(not_compiled(name, "vulkan"))
            }
        }
        DeviceName::Tch(cuda) => {
            #[cfg(feature = "tch")]
            {
                #[allow(deprecated)]
                match cuda {
                    None => Ok(Device::libtorch()),
                    Some(index) => Ok(Device::libtorch_cuda(index)),
                }
            }
            #[cfg(not(feature = "tch"))]
            {
                let _ = cuda;
                Err(not_compiled(name, "tch"))
            }
        }
    }
}

/// [`resolve_device`] and set the default float precision (e.g. bf16 on a GPU). Must run before
/// any tensor is created on that device.
pub fn resolve_device_with_dtype(name: &str, dtype: WeightDType) -> anyhow::Result<Device> {
    let mut device = resolve_device(name)?;
    if dtype != WeightDType::F32 {
        device
            .configure(dtype.float_dtype())
            .map_err(|e| anyhow::anyhow!("device `{name}` cannot compute in {dtype:?}: {e:?}"))?;
    }
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_resolves_and_unknown_names_fail() {
        assert!(resolve_device("cpu").is_ok());
        let err = resolve_device("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
        assert!(resolve_device("cpu:1").is_err());
    }

    #[test]
    fn device_names_are_checked_without_opening_a_device() {
        for good in [
            "cpu",
            "CPU",
            "cuda",
            "cuda:1",
            "vulkan",
            "vulkan:cpu",
            "vulkan:0",
            "tch",
            "tch:cuda:1",
        ] {
            assert!(check_device_name(good).is_ok(), "{good}");
        }
        for bad in ["tpu", "cpu:1", "cuda:x", "vulkan:-1", "tch:rocm", ""] {
            let err = check_device_name(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_names_the_feature() {
        let err = resolve_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[test]
    fn dtype_names_parse() {
        assert_eq!("bf16".parse::<WeightDType>().unwrap(), WeightDType::Bf16);
        assert!("int8".parse::<WeightDType>().is_err());
    }
}
