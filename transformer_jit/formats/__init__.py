"""Other projects' file formats, byte-level codecs only. Imports numpy, json, the standard library
and transformer_jit.util (atomic writes), nothing else of the package; models and above use them.
They know GPT-2's parameters by nanoGPT's names and layouts, and the vision transformer's by this
package's names, not by this package's classes.

    safetensors        SafetensorsFile (memory-mapped, validated), load_safetensors, save_safetensors
    gpt2_layout        GPT-2's parameter names and shapes, and the checks the codecs share
    gpt2_huggingface   Hugging Face GPT-2 directories (config.json, model.safetensors)
    llmc               llm.c's GPT-2 checkpoints (gpt2_124M.bin)
    vit_huggingface    Hugging Face ViT image classifiers (config.json, model.safetensors, preprocessor_config.json)
"""
from .gpt2_huggingface import HuggingFaceGPT2, save_gpt2_pretrained
from .llmc import LlmcGPT2, save_llmc
from .safetensors import SafetensorsFile, load_safetensors, save_safetensors
from .vit_huggingface import HuggingFaceViT, save_vit_pretrained

__all__ = ["HuggingFaceGPT2", "save_gpt2_pretrained", "LlmcGPT2", "save_llmc", "SafetensorsFile",
           "load_safetensors", "save_safetensors", "HuggingFaceViT", "save_vit_pretrained"]
