"""Built-in node types, one module each. Every module defines NODE, its Node subclass."""

BUILTIN_MODULES = (
    "source_sine",
    "source_csv",
    "encoder_mlp",
    "htm_sp",
    "htm_tm",
    "decoder_mlp",
    "loss_mse",
    "loss_term",
    "metric_nrmse",
    "anomaly_likelihood",
    "util_concat",
    "encoder_fourier",
)
