defmodule Foundation.Application do
  @moduledoc """
  Starts the flag table owner and the deployment monitor.

  Both keep their state in memory only, so a node restart brings every flag and metric back
  to its default, as in the real service.
  """

  use Application

  @impl true
  def start(_type, _args) do
    children = [
      Foundation.FeatureFlags,
      Foundation.Deployment.Monitor
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Foundation.Supervisor)
  end
end
