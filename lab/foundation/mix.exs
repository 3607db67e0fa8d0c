defmodule Foundation.MixProject do
  use Mix.Project

  # A stand-in for the Foundation service's release: the feature-flag and deployment-monitor
  # surface that the rollout tool drives over `bin/foundation rpc`. Zero hex dependencies, so it
  # builds offline with `MIX_ENV=prod mix release --overwrite`.
  def project do
    [
      app: :foundation,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [],
      releases: [
        foundation: [
          include_executables_for: [:unix],
          strip_beams: true
        ]
      ]
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {Foundation.Application, []}
    ]
  end
end
