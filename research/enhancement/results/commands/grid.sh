# usage: grid.sh IMAGES... ; 4 enhancement points and 4 no-base points per image at 400 iterations
for im in "$@"; do
  for a in "1 3e-3" "0 3e-3" "1 1e-3" "0 1e-3" "3 3e-4" "0 3e-4" "3 1e-4" "0 1e-4"; do
    set -- $a; nice -n 5 python run_point.py $im 256 $1 $2 400 tag=grid400
  done
done
