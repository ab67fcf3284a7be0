from algostream.cli import main

main()
