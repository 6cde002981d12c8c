package dist_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/fertorch/fertorch/torch/dist"
)

// lookup is a getenv over a fixed set of variables.
func lookup(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestFromEnv(t *testing.T) {
	full := map[string]string{
		"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
		"MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29500",
		"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "3", "GLOO_SOCKET_IFNAME": "eth0",
	}
	env, ok, err := dist.FromEnv(lookup(full))
	want := dist.Env{Rank: 2, WorldSize: 4, LocalRank: 0, LocalWorldSize: 2, MasterAddr: "10.0.0.7", MasterPort: 29500,
		UseAgentStore: true, RestartCount: 3, SocketIfname: "eth0"}
	if err != nil || !ok || env != want {
		t.Fatalf("FromEnv(full) = %+v, %v, %v; want %+v", env, ok, err, want)
	}
	// Environ writes what FromEnv reads.
	back := map[string]string{}
	for _, kv := range env.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		back[k] = v
	}
	if !reflect.DeepEqual(back, full) {
		t.Errorf("Environ() = %v, want %v", back, full)
	}

	// One process: nothing set.
	if env, ok, err := dist.FromEnv(lookup(nil)); ok || err != nil || env != (dist.Env{}) {
		t.Errorf("FromEnv(empty) = %+v, %v, %v; want zero, false, nil", env, ok, err)
	}

	// Defaults: LOCAL_RANK 0, LOCAL_WORLD_SIZE 1, agent store off, attempt 0;
	// a job of one rank needs no master and picks a free port.
	env, ok, err = dist.FromEnv(lookup(map[string]string{"RANK": "0", "WORLD_SIZE": "1"}))
	want = dist.Env{Rank: 0, WorldSize: 1, LocalWorldSize: 1, MasterAddr: "127.0.0.1"}
	if err != nil || !ok || env != want {
		t.Errorf("FromEnv(rank 0 of 1) = %+v, %v, %v; want %+v", env, ok, err, want)
	}
	env, ok, err = dist.FromEnv(lookup(map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1234",
		"TORCHELASTIC_USE_AGENT_STORE": "False"}))
	want = dist.Env{Rank: 1, WorldSize: 2, LocalWorldSize: 1, MasterAddr: "h", MasterPort: 1234}
	if err != nil || !ok || env != want {
		t.Errorf("FromEnv(rank 1 of 2) = %+v, %v, %v; want %+v", env, ok, err, want)
	}

	base := map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
	with := func(changes ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(changes); i += 2 {
			if changes[i+1] == "" {
				delete(m, changes[i])
			} else {
				m[changes[i]] = changes[i+1]
			}
		}
		return m
	}
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{with("WORLD_SIZE", ""), "RANK=1 is set but WORLD_SIZE is not (set both, or neither for one process)"},
		{with("RANK", ""), "WORLD_SIZE=2 is set but RANK is not"},
		{with("RANK", "2"), "RANK=2 is out of range for WORLD_SIZE=2 (ranks are 0..1)"},
		{with("RANK", "-1"), "RANK=-1 must be at least 0"},
		{with("RANK", "one"), `RANK="one" is not a whole number`},
		{with("WORLD_SIZE", "0"), "WORLD_SIZE=0 must be at least 1"},
		{with("WORLD_SIZE", "2.5"), `WORLD_SIZE="2.5" is not a whole number`},
		{with("LOCAL_RANK", "x"), `LOCAL_RANK="x" is not a whole number`},
		{with("LOCAL_WORLD_SIZE", "0"), "LOCAL_WORLD_SIZE=0 must be at least 1"},
		{with("LOCAL_RANK", "2", "LOCAL_WORLD_SIZE", "2"), "LOCAL_RANK=2 is out of range for LOCAL_WORLD_SIZE=2"},
		{with("MASTER_ADDR", ""), "WORLD_SIZE=2 needs MASTER_ADDR (the address of rank 0 or of the launcher's store)"},
		{with("MASTER_PORT", ""), "WORLD_SIZE=2 needs MASTER_PORT (the port of the rendezvous store)"},
		{with("MASTER_PORT", "http"), `MASTER_PORT="http" is not a whole number`},
		{with("MASTER_PORT", "0"), "MASTER_PORT=0 must be at least 1"},
		{with("MASTER_PORT", "70000"), "MASTER_PORT=70000 is not a TCP port (1..65535)"},
		{with("TORCHELASTIC_USE_AGENT_STORE", "yes"), "TORCHELASTIC_USE_AGENT_STORE=yes: want True or False"},
		{with("TORCHELASTIC_RESTART_COUNT", "-2"), "TORCHELASTIC_RESTART_COUNT=-2 must be at least 0"},
		{with("GLOO_SOCKET_IFNAME", "eth0,eth1"), "GLOO_SOCKET_IFNAME=eth0,eth1 lists several interfaces; fertorch uses one"},
		{map[string]string{"RANK": "0", "WORLD_SIZE": "1", "TORCHELASTIC_USE_AGENT_STORE": "True"},
			"TORCHELASTIC_USE_AGENT_STORE=True needs MASTER_PORT (the port of the launcher's store)"},
	} {
		env, ok, err := dist.FromEnv(lookup(c.vars))
		if err == nil || err.Error() != c.want || ok || env != (dist.Env{}) {
			t.Errorf("FromEnv(%v) = %+v, %v, %v; want error %q", c.vars, env, ok, err, c.want)
		}
	}
}

func TestEnvironOmitsUnsetPortAndInterface(t *testing.T) {
	got := dist.Env{Rank: 0, WorldSize: 1, LocalWorldSize: 1, MasterAddr: "127.0.0.1"}.Environ()
	want := []string{"RANK=0", "WORLD_SIZE=1", "LOCAL_RANK=0", "LOCAL_WORLD_SIZE=1", "MASTER_ADDR=127.0.0.1",
		"TORCHELASTIC_USE_AGENT_STORE=False", "TORCHELASTIC_RESTART_COUNT=0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Environ() = %q, want %q", got, want)
	}
}
