"""TaskFlow decorators for the ML steps: ``@task.ml_featurize``, ``@task.ml_train``, ``@task.ml_evaluate``.

Registered in the provider info's ``task-decorators``, so ``from airflow.sdk import task`` is all a DAG
file imports. Each decorated function is the user callable of the matching operator (the transform,
the training function, the metric function); the decorator's arguments are that operator's arguments
and the call's arguments are the data references and the function's params:

    features = featurize("{{ params.raw_uri }}")   # FeaturizeOperator(raw_uri=..., transform=featurize)
    model = train(features, C=0.5)                 # TrainOperator(features=..., train=train, train_params={"C": 0.5})
    metrics = evaluate(model, model["holdout"])    # EvaluateOperator(model=..., holdout=..., metric_fn=evaluate)

The tasks are the operators themselves (:mod:`airflow_ml_provider.decorators.base`), so their MLflow
runs, step records, fingerprints, lineage and gate evidence are the classic operators'.
"""
