"""Pure builders the components call: device-plugin configs and Helm values, node labels and
taints, workloads, Karpenter objects and IAM documents, Bottlerocket settings, metrics values,
pod security. They take settings and facts and return plain data; nothing here registers a
resource or talks to AWS or Kubernetes."""
