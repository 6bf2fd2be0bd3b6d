//! Every bad model directory gives an error that names the file (and tensor) and says
//! what to do; none panics.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use polaris::lm::LanguageModel;
use polaris::model::Model;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn qwen3_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&shared().join("models/qwen3-tiny"), tmp.path());
    tmp
}

fn load_err(dir: &Path) -> String {
    match Model::load_dir(dir, &cpu(DType::F32)) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v = read_json(&path);
    f(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn missing_directory_and_files() {
    let e = LanguageModel::open("/no/such/model", &cpu(DType::F32)).err().unwrap().to_string();
    assert!(e.contains("/no/such/model") && e.contains("no such model directory"), "{e}");

    let tmp = qwen3_copy();
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("config.json"), "{e}");

    let tmp = qwen3_copy();
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("no model.safetensors") && e.contains(&tmp.path().display().to_string()), "{e}");

    let tmp = qwen3_copy();
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let e = LanguageModel::from_dir(tmp.path(), &cpu(DType::F32)).err().unwrap().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn bad_config_values_name_the_field() {
    let tmp = qwen3_copy();
    edit_config(tmp.path(), |v| v["model_type"] = "mamba".into());
    let e = load_err(tmp.path());
    assert!(e.contains("unsupported model_type \"mamba\"") && e.contains("config.json"), "{e}");

    let tmp = qwen3_copy();
    edit_config(tmp.path(), |v| v["hidden_size"] = "64".into());
    let e = load_err(tmp.path());
    assert!(e.contains("field hidden_size must be a non-negative integer"), "{e}");

    let tmp = qwen3_copy();
    edit_config(tmp.path(), |v| {
        v.as_object_mut().unwrap().remove("vocab_size");
    });
    assert!(load_err(tmp.path()).contains("missing field vocab_size"));

    let tmp = qwen3_copy();
    std::fs::write(tmp.path().join("config.json"), "{ not json").unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("config.json is not valid JSON"), "{e}");
}

#[test]
fn missing_and_misshaped_tensors_name_file_and_tensor() {
    // a tensor missing from the file
    let tmp = qwen3_copy();
    let path = tmp.path().join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("tensor model.layers.1.mlp.up_proj.weight") && e.contains("missing"), "{e}");

    // config says one size, file holds another
    let tmp = qwen3_copy();
    edit_config(tmp.path(), |v| v["intermediate_size"] = 170.into());
    let e = load_err(tmp.path());
    assert!(
        e.contains("model.safetensors")
            && e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[160, 64]")
            && e.contains("[170, 64]"),
        "{e}"
    );
}

#[test]
fn truncated_and_missing_files() {
    let tmp = qwen3_copy();
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors") && e.contains("truncated or corrupt"), "{e}");

    // a shard named by the index is gone
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("models/qwen3-sharded"), tmp.path());
    std::fs::remove_file(tmp.path().join("model-00003-of-00004.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model-00003-of-00004.safetensors") && e.contains("missing"), "{e}");
}

#[test]
fn key_layouts_are_mapped_onto_canonical_names() {
    // the same weights saved under the multimodal prefix, with vision and MTP keys to skip
    let src = shared().join("models/qwen3-tiny");
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src, tmp.path());
    let mut renamed: HashMap<String, Tensor> =
        tensors.iter().map(|(k, v)| (k.replacen("model.", "model.language_model.", 1), v.clone())).collect();
    renamed.insert(
        "model.visual.patch_embed.weight".into(),
        Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    renamed.insert("mtp.fc.weight".into(), Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&renamed, tmp.path().join("model.safetensors")).unwrap();
    let ckpt = polaris::model::weights::Checkpoint::open(tmp.path()).unwrap();
    assert_eq!(
        ckpt.ignored,
        vec!["model.visual.patch_embed.weight".to_string(), "mtp.fc.weight".to_string()]
    );
    let a = Model::load_dir(&src, &cpu(DType::F32)).unwrap();
    let b = Model::load_dir(tmp.path(), &cpu(DType::F32)).unwrap();
    assert_eq!(a.skipped_note(), None);
    assert_eq!(
        b.skipped_note().as_deref(),
        Some("skipped 2 checkpoint tensors outside the text model (model.visual.*, mtp.*)")
    );
    let x = ids(&[vec![1, 2, 3, 4]]);
    let d = (a.logits(&x).unwrap() - b.logits(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_keepdim(2)
        .unwrap()
        .max_keepdim(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0];
    assert_eq!(d, 0.0);
}

#[test]
fn dtype_flags_load_half_precision() {
    for dtype in [DType::BF16, DType::F16] {
        let m = Model::load_dir(&shared().join("models/qwen3-tiny"), &cpu(dtype)).unwrap();
        assert_eq!(m.dtype(), dtype);
        let logits = m.logits(&ids(&[vec![1, 2, 3]])).unwrap();
        assert_eq!(logits.dtype(), dtype);
    }
    let e = polaris::device::parse_dtype("int8").unwrap_err().to_string();
    assert!(e.contains("--dtype"), "{e}");
    let e = polaris::device::parse_device("tpu:0").unwrap_err().to_string();
    assert!(e.contains("--device"), "{e}");
    #[cfg(not(feature = "cuda"))]
    assert!(polaris::device::parse_device("cuda:0").unwrap_err().to_string().contains("--features cuda"));
}
