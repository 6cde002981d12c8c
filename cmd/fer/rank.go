package main

import (
	"fmt"
	"os"
	"time"

	"github.com/fertorch/fertorch/torch/dist"
	"github.com/fertorch/fertorch/train"
	"github.com/spf13/pflag"
)

// job is this process's place in a distributed run: a rank of the group
// that torchrun's environment contract describes, or nothing (one process).
type job struct {
	env         dist.Env
	distributed bool
	group       *dist.Group
}

// joinJob reads the environment contract (RANK, WORLD_SIZE, MASTER_ADDR,
// ...) and, when it describes a job, joins it: the rank's device is the
// run's (a resumed run's own unless --device is given), CUDA ranks using
// cuda:LOCAL_RANK with NCCL, CPU ranks Gloo.
func joinJob(fs *pflag.FlagSet, cfg train.Config, resume string, timeout time.Duration) (*job, error) {
	env, ok, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("distributed environment: %w", err)
	}
	j := &job{env: env, distributed: ok}
	if !ok {
		return j, nil
	}
	if timeout <= 0 {
		return nil, usagef("--dist-timeout %v must be positive", timeout)
	}
	spec := cfg.Train.Device
	if resume != "" && !fs.Changed("device") {
		if spec, err = train.ResumeDevice(resume); err != nil {
			return nil, j.wrap(err)
		}
	}
	dev, err := train.RankDevice(spec, env.LocalRank, env.LocalWorldSize)
	if err != nil {
		return nil, j.wrap(err)
	}
	if j.group, err = dist.Init(env, dist.Options{Timeout: timeout, Device: dev}); err != nil {
		return nil, j.wrap(err)
	}
	return j, nil
}

// lead is true for the process that logs and writes: rank 0, or the one
// process of a run that is not distributed.
func (j *job) lead() bool { return j.group == nil || j.env.Rank == 0 }

// wrap prefixes a distributed rank's error with its rank.
func (j *job) wrap(err error) error {
	if err == nil || !j.distributed {
		return err
	}
	return fmt.Errorf("rank %d: %w", j.env.Rank, err)
}

// close leaves the job.
func (j *job) close() {
	if j.group != nil {
		j.group.Close()
	}
}
