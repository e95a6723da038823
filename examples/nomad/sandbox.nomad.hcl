# A banger VM as a Nomad task (see docs/scale.md).
#   nomad job run examples/nomad/sandbox.nomad.hcl
#   nomad alloc exec -task vm ALLOC_ID /bin/sh     # a shell in the VM
#   nomad job stop sandbox                          # powers the VM off and deletes it
variable "image" {
  type    = string
  default = "debian-bookworm"
}

variable "memory" {
  type    = number
  default = 1024
}

variable "nat" {
  type    = bool
  default = true
}

job "sandbox" {
  datacenters = ["dc1"]
  type        = "service"

  group "sandbox" {
    # A VM that fails is not retried on this node: Nomad reports it.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "vm" {
      driver       = "banger"
      kill_timeout = "30s" # guest power-off gets this long, then the VMM is killed

      config {
        image          = var.image
        vcpus          = 1
        work_disk_size = "2G"
        nat            = var.nat
      }

      # memory is the VM's memory (config memory_mib overrides it).
      resources {
        cpu    = 500
        memory = var.memory
      }

      # The VM's own address is advertised (address_mode "driver").
      service {
        name         = "sandbox-ssh"
        provider     = "nomad"
        port         = 22
        address_mode = "driver"
      }
    }
  }
}
