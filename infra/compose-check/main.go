// compose-check loads Compose files with compose-go, the parser `docker compose` itself uses, and validates them as
// `docker compose config` does: the Compose Specification's JSON schema, then the model's consistency (undefined
// services, networks or volumes, dependency cycles, bad health checks, ...). No Docker engine is needed.
//
//	go run ./infra/compose-check [-profile NAME]... [-no-env] FILE...
//
// It prints the loaded project as JSON (what `docker compose config --format json` prints) on success, and the
// error on stderr with exit status 1 otherwise. Profiles: none given loads what plain `docker compose up` starts;
// `-profile '*'` enables every profile.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var profiles list
	flag.Var(&profiles, "profile", "enable a profile (repeatable; * for every one)")
	noEnv := flag.Bool("no-env", false, "do not read the services' env_file files")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-profile NAME]... [-no-env] FILE...")
		os.Exit(2)
	}
	// As docker compose: the project directory is the first file's, interpolation reads the process environment and
	// that directory's .env; consistency checks and path resolution on.
	options := []cli.ProjectOptionsFn{
		cli.WithOsEnv,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	}
	if *noEnv {
		options = append(options, cli.WithoutEnvironmentResolution)
	}
	opts, err := cli.NewProjectOptions(flag.Args(), options...)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
	os.Exit(1)
}
