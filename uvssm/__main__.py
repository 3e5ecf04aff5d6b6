from uvssm.cli import main

main()
