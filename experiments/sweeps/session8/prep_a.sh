# Sourced by scripts/gpu_recipe_sweep.sh (sweep a): a validation set (seed 1, 240 held-out scenes) and the
# seed-0 training data with 1 in 3 length records kept.
quickstart_data /tmp/qsval /tmp/qsval.log --seed 1 --test-scenes 240
python3 scripts/recipe_variants.py mix "$qs" /tmp/qs_mix3 --keep-lengths 3
