# Sourced by scripts/gpu_recipe_sweep.sh (sweep b): the validation set (seed 1, 240 held-out scenes).
quickstart_data /tmp/qsval /tmp/qsval.log --seed 1 --test-scenes 240
