package dist

import (
	"fmt"
	"strconv"
	"strings"
)

// Env is torchrun's environment contract (Kubernetes' PyTorchJob sets a
// subset of it): which rank this process is, how many there are, and where
// the rendezvous store is.
type Env struct {
	// Rank is this process's rank, 0..WorldSize-1 (RANK).
	Rank int
	// WorldSize is the number of processes in the job (WORLD_SIZE).
	WorldSize int
	// LocalRank is the rank among the processes of this node (LOCAL_RANK,
	// default 0); a CUDA job uses GPU LocalRank.
	LocalRank int
	// LocalWorldSize is the number of processes on this node
	// (LOCAL_WORLD_SIZE, default 1).
	LocalWorldSize int
	// MasterAddr and MasterPort locate the TCPStore (MASTER_ADDR,
	// MASTER_PORT), hosted by rank 0 unless UseAgentStore.
	MasterAddr string
	MasterPort int
	// UseAgentStore is TORCHELASTIC_USE_AGENT_STORE=True: the launcher hosts
	// the store and every rank, rank 0 included, connects to it.
	UseAgentStore bool
	// RestartCount is TORCHELASTIC_RESTART_COUNT: the job's keys live under
	// the store prefix "/worker/attempt_N", so a restarted job starts clean.
	RestartCount int
	// SocketIfname is GLOO_SOCKET_IFNAME: the network interface Gloo uses.
	SocketIfname string
}

// Environment variable names of the contract.
const (
	envRank           = "RANK"
	envWorldSize      = "WORLD_SIZE"
	envLocalRank      = "LOCAL_RANK"
	envLocalWorldSize = "LOCAL_WORLD_SIZE"
	envMasterAddr     = "MASTER_ADDR"
	envMasterPort     = "MASTER_PORT"
	envAgentStore     = "TORCHELASTIC_USE_AGENT_STORE"
	envRestartCount   = "TORCHELASTIC_RESTART_COUNT"
	envSocketIfname   = "GLOO_SOCKET_IFNAME"
)

// FromEnv reads the contract through getenv (os.Getenv, or a map's lookup in
// tests). ok is false, with no error, when WORLD_SIZE is unset: one process.
// Errors are one line naming the variable: WORLD_SIZE without RANK (or RANK
// without WORLD_SIZE), RANK >= WORLD_SIZE, values that are not whole numbers,
// a missing MASTER_ADDR or MASTER_PORT when WORLD_SIZE > 1. LOCAL_RANK
// defaults to 0 and LOCAL_WORLD_SIZE to 1; with WORLD_SIZE=1, MASTER_ADDR
// defaults to 127.0.0.1 and MASTER_PORT to 0 (a free port).
func FromEnv(getenv func(string) string) (env Env, ok bool, err error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	ws, rank := get(envWorldSize), get(envRank)
	if ws == "" {
		if rank != "" {
			return Env{}, false, fmt.Errorf("%s=%s is set but %s is not (set both, or neither for one process)", envRank, rank, envWorldSize)
		}
		return Env{}, false, nil
	}
	if env.WorldSize, err = intVar(envWorldSize, ws, 1); err != nil {
		return Env{}, false, err
	}
	if rank == "" {
		return Env{}, false, fmt.Errorf("%s=%d is set but %s is not", envWorldSize, env.WorldSize, envRank)
	}
	if env.Rank, err = intVar(envRank, rank, 0); err != nil {
		return Env{}, false, err
	}
	if env.Rank >= env.WorldSize {
		return Env{}, false, fmt.Errorf("%s=%d is out of range for %s=%d (ranks are 0..%d)", envRank, env.Rank, envWorldSize, env.WorldSize, env.WorldSize-1)
	}
	env.LocalWorldSize = 1
	if v := get(envLocalWorldSize); v != "" {
		if env.LocalWorldSize, err = intVar(envLocalWorldSize, v, 1); err != nil {
			return Env{}, false, err
		}
	}
	if v := get(envLocalRank); v != "" {
		if env.LocalRank, err = intVar(envLocalRank, v, 0); err != nil {
			return Env{}, false, err
		}
		if get(envLocalWorldSize) != "" && env.LocalRank >= env.LocalWorldSize {
			return Env{}, false, fmt.Errorf("%s=%d is out of range for %s=%d", envLocalRank, env.LocalRank, envLocalWorldSize, env.LocalWorldSize)
		}
	}
	env.MasterAddr = get(envMasterAddr)
	port := get(envMasterPort)
	if env.WorldSize > 1 {
		if env.MasterAddr == "" {
			return Env{}, false, fmt.Errorf("%s=%d needs %s (the address of rank 0 or of the launcher's store)", envWorldSize, env.WorldSize, envMasterAddr)
		}
		if port == "" {
			return Env{}, false, fmt.Errorf("%s=%d needs %s (the port of the rendezvous store)", envWorldSize, env.WorldSize, envMasterPort)
		}
	}
	if env.MasterAddr == "" {
		env.MasterAddr = "127.0.0.1"
	}
	if port != "" {
		if env.MasterPort, err = intVar(envMasterPort, port, 1); err != nil {
			return Env{}, false, err
		}
		if env.MasterPort > 65535 {
			return Env{}, false, fmt.Errorf("%s=%d is not a TCP port (1..65535)", envMasterPort, env.MasterPort)
		}
	}
	switch v := get(envAgentStore); strings.ToLower(v) {
	case "", "false", "0":
	case "true", "1":
		env.UseAgentStore = true
	default:
		return Env{}, false, fmt.Errorf("%s=%s: want True or False", envAgentStore, v)
	}
	if env.UseAgentStore && env.MasterPort == 0 {
		return Env{}, false, fmt.Errorf("%s=True needs %s (the port of the launcher's store)", envAgentStore, envMasterPort)
	}
	if v := get(envRestartCount); v != "" {
		if env.RestartCount, err = intVar(envRestartCount, v, 0); err != nil {
			return Env{}, false, err
		}
	}
	env.SocketIfname = get(envSocketIfname)
	if strings.Contains(env.SocketIfname, ",") {
		return Env{}, false, fmt.Errorf("%s=%s lists several interfaces; fertorch uses one", envSocketIfname, env.SocketIfname)
	}
	return env, true, nil
}

// intVar parses a whole number of at least min from the variable name.
func intVar(name, v string, min int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a whole number", name, v)
	}
	if n < min {
		return 0, fmt.Errorf("%s=%d must be at least %d", name, n, min)
	}
	return n, nil
}

// Environ is the variables that describe e, as NAME=VALUE for a worker's
// environment (exec.Cmd.Env): what FromEnv reads back as e. MASTER_PORT is
// left out when MasterPort is 0.
func (e Env) Environ() []string {
	agent := "False"
	if e.UseAgentStore {
		agent = "True"
	}
	vars := []string{
		envRank + "=" + strconv.Itoa(e.Rank),
		envWorldSize + "=" + strconv.Itoa(e.WorldSize),
		envLocalRank + "=" + strconv.Itoa(e.LocalRank),
		envLocalWorldSize + "=" + strconv.Itoa(e.LocalWorldSize),
		envMasterAddr + "=" + e.MasterAddr,
		envAgentStore + "=" + agent,
		envRestartCount + "=" + strconv.Itoa(e.RestartCount),
	}
	if e.MasterPort != 0 {
		vars = append(vars, envMasterPort+"="+strconv.Itoa(e.MasterPort))
	}
	if e.SocketIfname != "" {
		vars = append(vars, envSocketIfname+"="+e.SocketIfname)
	}
	return vars
}

// storePrefix is the key prefix of restart attempt n, as torchelastic names
// it.
func storePrefix(n int) string { return "/worker/attempt_" + strconv.Itoa(n) }
