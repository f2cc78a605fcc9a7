/// Local learning on tabular clinical data: CSV, models, optimizers, metrics, training.
public enum Learning {}
