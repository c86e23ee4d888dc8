export PYTHONPATH=/work/proto/snap:/work/proto
nice -n 5 python pretrain_shared.py runs/shared_base.pt 150 1 > runs/pretrain_base.log 2>&1
for a in "3 1e-4" "1 1e-3"; do set -- $a
  nice -n 5 python run_point.py kodim23 256 $1 $2 400 tag=shared400 shared=runs/shared_base.pt; done
