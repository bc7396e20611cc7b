"""Entry scripts of the trainers: `python -m webshop_trl.scripts.<method> --config recipe.yaml`."""
