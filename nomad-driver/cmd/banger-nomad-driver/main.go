// Command banger-nomad-driver is banger's Nomad task driver plugin. Put it in
// the Nomad client's plugin_dir; jobs then use driver = "banger".
package main

import (
	"banger/nomad-driver/driver"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"
)

func main() {
	plugins.Serve(func(log hclog.Logger) interface{} { return driver.New(log) })
}
