for it in 1600; do
  nice -n 5 python run_point.py kodim23 256 3 3e-4 $it tag=scale
  nice -n 5 python run_point.py kodim23 256 0 3e-4 $it tag=scale
done
