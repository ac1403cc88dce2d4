from vedfin.cli import main

main()
