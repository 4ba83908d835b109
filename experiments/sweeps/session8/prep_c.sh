# Sourced by scripts/gpu_recipe_sweep.sh (sweep c): the validation set (seed 1, 240 held-out scenes), and both sets
# with reasoned answers written without "the" (recipe_variants.py short).
quickstart_data /tmp/qsval /tmp/qsval.log --seed 1 --test-scenes 240
python3 scripts/recipe_variants.py short "$qs" /tmp/qs_short
python3 scripts/recipe_variants.py short /tmp/qsval /tmp/qsval_short
