#!/usr/bin/env bash
# Ablation of the seed's training tips on the cGAN: 6 variants x 2 seeds, one at a time, one thread.
# Same data (Fashion-MNIST train, 60k), same budget (2 epochs, batch 64, ngf/ndf 32) for each.
set -u
cd "$(dirname "$0")/.."
B=.venv/bin
COMMON="--conditional --epochs 2 --ngf 32 --ndf 32 --batch-size 64 --threads 1 --no-progress"
declare -A FLAGS=([baseline]="" [sphere]="--prior sphere" [vbn]="--vbn" [k2]="--k 2" [gleaky]="--g-leaky" [jointd]="--joint-d")
for seed in 0 1; do
  for v in baseline sphere vbn k2 gleaky jointd; do
    d=runs/ablation/$v-s$seed
    [ -f $d/model.onnx ] && continue
    rm -rf $d
    start=$(date +%s)
    $B/ganrt-export train gan $COMMON ${FLAGS[$v]} --seed $seed --run-dir $d > $d.log 2>&1
    $B/ganrt-export export $d $d/model.onnx --name abl-$v-s$seed >> $d.log 2>&1
    echo "$v seed $seed: $(( $(date +%s) - start )) s" >> runs/ablation/times.log
  done
done
echo all done >> runs/ablation/times.log
