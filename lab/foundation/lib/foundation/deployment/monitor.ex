defmodule Foundation.Deployment.Monitor do
  @moduledoc """
  The deployment health the rollout tool samples while it soaks a phase (spec "Monitoring
  Dashboard").

  The lab has no traffic, so the metrics are values held in this process: healthy defaults at
  boot, changed from outside through `put_metrics/1`, `delete_metric/1` and `reset_metrics/0`
  (any term is accepted, so tests can inject `:nan` or a string). `set_delay/1` makes
  `get_deployment_health/0` wait before answering, to imitate a console that stops answering.
  Everything resets on node restart.
  """

  use GenServer

  @flags_table :foundation_feature_flags

  @default_metrics %{
    error_rate: 0.5,
    restart_frequency: 0,
    message_delivery_success: 99.9,
    state_recovery_success: 99.95,
    average_response_time: 20
  }

  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "The healthy defaults a freshly booted node reports."
  def default_metrics, do: @default_metrics

  @doc "Phase, flags, metrics and alerts, as the spec's dashboard returns them."
  def get_deployment_health do
    case GenServer.call(__MODULE__, :delay) do
      0 -> :ok
      ms -> Process.sleep(ms)
    end

    %{
      phase: nil,
      flags: get_current_flags(),
      metrics: get_current_metrics(),
      alerts: []
    }
  end

  @doc "The current metric values."
  def get_current_metrics do
    GenServer.call(__MODULE__, :metrics)
  end

  @doc "Merges `metrics` into the current values."
  def put_metrics(metrics) when is_map(metrics) do
    GenServer.call(__MODULE__, {:put_metrics, metrics})
  end

  @doc "Removes one metric, so the health report lacks it."
  def delete_metric(metric) do
    GenServer.call(__MODULE__, {:delete_metric, metric})
  end

  @doc "Puts every metric back to its healthy default."
  def reset_metrics do
    GenServer.call(__MODULE__, :reset_metrics)
  end

  @doc "Makes `get_deployment_health/0` sleep `ms` milliseconds first; 0 clears it."
  def set_delay(ms) when is_integer(ms) and ms >= 0 do
    GenServer.call(__MODULE__, {:set_delay, ms})
  end

  defp get_current_flags do
    @flags_table |> :ets.tab2list() |> Map.new()
  end

  # Server callbacks

  @impl true
  def init(_opts) do
    {:ok, %{metrics: @default_metrics, delay: 0}}
  end

  @impl true
  def handle_call(:delay, _from, state), do: {:reply, state.delay, state}
  def handle_call(:metrics, _from, state), do: {:reply, state.metrics, state}

  def handle_call({:put_metrics, metrics}, _from, state) do
    {:reply, :ok, %{state | metrics: Map.merge(state.metrics, metrics)}}
  end

  def handle_call({:delete_metric, metric}, _from, state) do
    {:reply, :ok, %{state | metrics: Map.delete(state.metrics, metric)}}
  end

  def handle_call(:reset_metrics, _from, state) do
    {:reply, :ok, %{state | metrics: @default_metrics}}
  end

  def handle_call({:set_delay, ms}, _from, state) do
    {:reply, :ok, %{state | delay: ms}}
  end
end
