for a in "3 1e-3" "1 3e-4" "6 1e-4" "6 3e-5" "10 3e-5" "0 3e-4" "0 3e-5"; do set -- $a; nice -n 5 python run_point.py kodim23 256 $1 $2 400 tag=pair; done
