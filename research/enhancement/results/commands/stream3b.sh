export PYTHONPATH=/work/proto/snap:/work/proto
while kill -0 15197 2>/dev/null; do sleep 5; done
nice -n 5 python pretrain_shared.py runs/shared_base.pt 150 1 > runs/pretrain_base.log 2>&1
for im in kodim23 kodim01; do for a in "1 3e-3" "1 1e-3" "3 3e-4" "3 1e-4"; do set -- $a
  nice -n 5 python run_point.py $im 256 $1 $2 400 tag=shared400 shared=runs/shared_base.pt; done; done
nice -n 5 python run_point.py kodim23 256 0 1e-4 1600 tag=scale
