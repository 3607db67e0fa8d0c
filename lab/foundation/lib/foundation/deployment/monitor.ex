defmodule Foundation.Deployment.Monitor do
  @moduledoc """
  The deployment health the rollout tool samples while it soaks a phase (spec "Monitoring
  Dashboard").

  The lab has no traffic, so the metrics are values held in this process: healthy defaults at
  boot, changed from outside through `put_metrics/1`, `delete_metric/1` and `reset_metrics/0`
  (any term is accepted, so tests can inject `:nan` or a string). `put_series/3` makes one
  metric a level plus uniform noise, drawn afresh on every read, so that a canary and its
  baseline can be compared as a real fleet's would be. `set_delay/1` makes
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

  @doc "Makes `metric` read as `level` plus uniform noise in [-noise, noise] on every read."
  def put_series(metric, level, noise)
      when is_atom(metric) and is_number(level) and is_number(noise) and noise >= 0 do
    GenServer.call(__MODULE__, {:put_series, metric, level, noise})
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
    {:ok, %{metrics: @default_metrics, series: %{}, delay: 0}}
  end

  @impl true
  def handle_call(:delay, _from, state), do: {:reply, state.delay, state}

  def handle_call(:metrics, _from, state) do
    drawn =
      Map.new(state.series, fn {metric, {level, noise}} ->
        {metric, Float.round(level + noise * (2 * :rand.uniform() - 1), 6)}
      end)

    {:reply, Map.merge(state.metrics, drawn), state}
  end

  def handle_call({:put_metrics, metrics}, _from, state) do
    series = Map.drop(state.series, Map.keys(metrics))
    {:reply, :ok, %{state | metrics: Map.merge(state.metrics, metrics), series: series}}
  end

  def handle_call({:put_series, metric, level, noise}, _from, state) do
    {:reply, :ok, %{state | series: Map.put(state.series, metric, {level, noise})}}
  end

  def handle_call({:delete_metric, metric}, _from, state) do
    state = %{state | series: Map.delete(state.series, metric)}
    {:reply, :ok, %{state | metrics: Map.delete(state.metrics, metric)}}
  end

  def handle_call(:reset_metrics, _from, state) do
    {:reply, :ok, %{state | metrics: @default_metrics, series: %{}}}
  end

  def handle_call({:set_delay, ms}, _from, state) do
    {:reply, :ok, %{state | delay: ms}}
  end
end
