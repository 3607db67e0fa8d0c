defmodule FoundationTest do
  use ExUnit.Case

  alias Foundation.Deployment.Monitor
  alias Foundation.FeatureFlags

  test "setters answer :ok for known flags and {:error, :unknown_flag} otherwise" do
    assert FeatureFlags.enable(:use_v2_coordinator) == :ok
    assert FeatureFlags.enabled?(:use_v2_coordinator) == true
    assert FeatureFlags.enable(:no_such_flag) == {:error, :unknown_flag}
    assert FeatureFlags.set_percentage(:no_such_flag, 5) == {:error, :unknown_flag}
    assert FeatureFlags.disable(:use_v2_coordinator) == :ok
  end

  test "a percentage is truthy for enabled?/1 and hashed for enabled_for_id?/2" do
    assert FeatureFlags.set_percentage(:use_persistent_agents, 0) == :ok
    assert FeatureFlags.enabled?(:use_persistent_agents) == 0
    refute FeatureFlags.enabled_for_id?(:use_persistent_agents, 42)
    assert FeatureFlags.set_percentage(:use_persistent_agents, 100) == :ok
    assert FeatureFlags.enabled_for_id?(:use_persistent_agents, 42)
    FeatureFlags.disable(:use_persistent_agents)
  end

  test "metrics merge, delete and reset" do
    Monitor.put_metrics(%{error_rate: :nan})
    assert Monitor.get_deployment_health().metrics.error_rate == :nan
    Monitor.delete_metric(:error_rate)
    refute Map.has_key?(Monitor.get_deployment_health().metrics, :error_rate)
    Monitor.reset_metrics()
    assert Monitor.get_deployment_health().metrics == Monitor.default_metrics()
  end
end
