defmodule JidoSystem.Agents.PersistentFoundationAgent do
  @moduledoc "Agents that keep their state across restarts (in :persistent_term here)."

  defmacro __using__(_opts) do
    quote do
      def persistent?, do: true

      defp restore(key, default), do: :persistent_term.get({:agent_state, key}, default)

      defp persist(key, value) do
        :persistent_term.put({:agent_state, key}, value)
        value
      end
    end
  end
end
