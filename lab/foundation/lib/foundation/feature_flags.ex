defmodule Foundation.FeatureFlags do
  @moduledoc """
  Runtime feature flags for the OTP refactor rollout (spec stage 5.2).

  The GenServer owns the named public ETS table `:foundation_feature_flags`; values live only
  there, so restarting the node (or this process) resets every flag to its default.

  Traits of the real service kept on purpose:

    * setters return `:ok`, or `{:error, :unknown_flag}` for a flag that is not one of the
      six below; they never raise for an unknown flag;
    * `enabled?/1` returns the stored value as is, so a percentage (even 0) is truthy;
    * only `enabled_for_id?/2` applies a percentage, by consistent hashing.
  """

  use GenServer
  require Logger

  @flags_table :foundation_feature_flags

  @otp_refactor_flags %{
    use_persistent_agents: false,
    use_v2_coordinator: false,
    use_new_error_handling: false,
    use_sync_test_apis: false,
    enforce_supervised_tasks: false,
    use_reliable_messaging: false
  }

  @doc "The known flags and their defaults."
  def defaults, do: @otp_refactor_flags

  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @impl true
  def init(_opts) do
    :ets.new(@flags_table, [:named_table, :public, :set])

    Enum.each(@otp_refactor_flags, fn {flag, default} ->
      value = Application.get_env(:foundation, flag, default)
      :ets.insert(@flags_table, {flag, value})
    end)

    {:ok, %{}}
  end

  # Client API

  @doc "The stored value of `flag` as is (`true`, `false` or a percentage); `false` if unknown."
  def enabled?(flag) do
    case :ets.lookup(@flags_table, flag) do
      [{^flag, value}] -> value
      [] -> false
    end
  end

  def enable(flag) do
    GenServer.call(__MODULE__, {:set_flag, flag, true})
  end

  def disable(flag) do
    GenServer.call(__MODULE__, {:set_flag, flag, false})
  end

  def set_percentage(flag, percentage) when percentage >= 0 and percentage <= 100 do
    GenServer.call(__MODULE__, {:set_percentage, flag, percentage})
  end

  @doc "Whether `flag` is on for `id`: a percentage admits a stable share of ids."
  def enabled_for_id?(flag, id) do
    case :ets.lookup(@flags_table, flag) do
      [{^flag, true}] ->
        true

      [{^flag, false}] ->
        false

      [{^flag, percentage}] when is_integer(percentage) ->
        hash = :erlang.phash2({flag, id}, 100)
        hash < percentage

      [] ->
        false
    end
  end

  # Server callbacks

  @impl true
  def handle_call({:set_flag, flag, value}, _from, state) do
    if Map.has_key?(@otp_refactor_flags, flag) do
      :ets.insert(@flags_table, {flag, value})
      Logger.info("Feature flag #{flag} set to #{value}")
      {:reply, :ok, state}
    else
      Logger.warning("Refused to set unknown feature flag #{inspect(flag)}")
      {:reply, {:error, :unknown_flag}, state}
    end
  end

  def handle_call({:set_percentage, flag, percentage}, _from, state) do
    if Map.has_key?(@otp_refactor_flags, flag) do
      :ets.insert(@flags_table, {flag, percentage})
      Logger.info("Feature flag #{flag} set to #{percentage}% rollout")
      {:reply, :ok, state}
    else
      Logger.warning("Refused to set unknown feature flag #{inspect(flag)}")
      {:reply, {:error, :unknown_flag}, state}
    end
  end
end
