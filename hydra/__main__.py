from hydra.cli import main

main(prog_name="hydra")
