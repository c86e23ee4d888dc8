for a in "1 1e-3" "3 3e-4" "3 1e-4" "10 1e-4" "0 1e-3" "0 1e-4"; do set -- $a; nice -n 5 python run_point.py kodim23 256 $1 $2 400 tag=pair; done
