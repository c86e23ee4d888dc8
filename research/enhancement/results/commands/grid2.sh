# usage: grid2.sh "IMAGE Q LAMBDA" ... ; runs the listed points at 400 iterations (256 crops), in order
export PYTHONPATH=/work/proto/snap:/work/proto
for a in "$@"; do set -- $a; nice -n 5 python run_point.py $1 256 $2 $3 400 tag=grid400; done
