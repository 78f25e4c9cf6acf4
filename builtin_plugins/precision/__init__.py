"""Built-in precision plugins: 32/64-true, 16/bf16-true, 16/bf16-mixed, FSDP."""
