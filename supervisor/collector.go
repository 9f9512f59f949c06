package supervisor

import (
	"context"
	"os"
	"time"

	"github.com/open-telemetry/opamp-go/protobufs"
	"github.com/stewardhq/steward/supervisor/agentproc"
	"google.golang.org/protobuf/proto"
)

// bootstrap runs the collector once on a minimal nop pipeline with the opamp
// extension, to learn its agent description and available components before
// connecting to the server, then stops it. A bootstrap that fails is logged
// and the supervisor goes on with a description of its own making.
func (s *Supervisor) bootstrap(ctx context.Context) {
	a := &s.cfg.Agent
	log := s.log.With("component", "bootstrap")
	cfg, err := bootstrapConfig(s.local.extension(os.Getpid()))
	if err != nil {
		log.Error("render bootstrap config", "error", err)
		return
	}
	path := s.store.Path("bootstrap.yaml")
	if err := writeFileAtomic(path, cfg); err != nil {
		log.Error("write bootstrap config", "error", err)
		return
	}
	args := append(append([]string(nil), a.Args...), "--config", path)
	env := make([]string, 0, len(a.Env))
	for _, k := range sortedKeys(a.Env) {
		env = append(env, k+"="+a.Env[k])
	}
	p, err := agentproc.Start(agentproc.Command{Path: s.executable(), Args: args, Env: env}, nil, log)
	if err != nil {
		log.Error("start collector for bootstrap", "error", err)
		return
	}
	defer p.Stop(context.WithoutCancel(ctx), a.StopTimeout)
	ctx, cancel := context.WithTimeout(ctx, a.BootstrapTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := s.local.report()
		if r.description != nil && (r.components != nil || !s.has(protobufs.AgentCapabilities_AgentCapabilities_ReportsAvailableComponents)) {
			log.Info("collector bootstrapped", "components", r.components != nil)
			return
		}
		select {
		case <-ctx.Done():
			log.Error("bootstrap: the collector's opamp extension did not report its description in time",
				"timeout", a.BootstrapTimeout, "last_output", lastErrorLine(p.Tail()))
			return
		case <-p.Done():
			log.Error("bootstrap: collector exited", "error", exitString(p.Err()), "last_output", lastErrorLine(p.Tail()))
			return
		case <-tick.C:
		}
	}
}

func protoEqual(a, b proto.Message) bool { return proto.Equal(a, b) }
